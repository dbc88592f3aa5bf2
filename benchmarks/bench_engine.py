"""Fusion-engine benchmark: pipeline overhead against one bare kernel call, and a large run.

Run with ``python3 dev.py bench engine`` (defaults below) or, e.g.::

    python3 dev.py bench engine --overhead-size 1536 --large-size 10000 --tile 256 --repeats 3

Part 1 (overhead): one STARFM prediction (one band, two pairs, W = 50) on an
``--overhead-size`` square image, first as one bare whole-image ``stfcube.kernels.starfm`` call on
in-memory arrays, then through ``stfcube.pipeline.engine.run.fuse`` (Zarr in, tiles with halos on a
dask ``LocalCluster``, Zarr out), both using the same two cores. Prints the ratio (target <= 1.15).

Part 2 (scale): a ``--large-size`` square single-band cube (streamed to Zarr, never held in
memory), fused on 2 workers x 1 thread; prints wall time and the peak resident memory summed
over this process and all its children (dask workers), sampled every 0.2 s (target < 4 GiB).
Skip it with ``--large-size 0``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import dask.array as da
import numba
import numpy as np
import psutil
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

from stfcube.kernels.starfm import starfm
from stfcube.pipeline.engine.cluster import ClusterSpec, dask_client
from stfcube.pipeline.engine.run import fuse

PAIR_DATES = ["2024-05-01", "2024-05-17"]
PREDICT_DATE = "2024-05-09"


def _scene_block(block: np.ndarray, block_info: dict | None = None, *, day: int, coarse: bool):
    """Deterministic patchy reflectance (x10000) for one chunk, from its global position."""
    (r0, r1), (c0, c1) = block_info[None]["array-location"][-2:]
    yy, xx = np.mgrid[r0:r1, c0:c1]
    if coarse:  # 16 x 16 block structure like a coarse sensor resampled onto the fine grid
        yy, xx = yy // 16 * 16, xx // 16 * 16
    patches = ((yy // 37) * 7 + (xx // 53) * 3) % 6
    texture = (np.sin(yy * 0.21) + np.cos(xx * 0.17)) * 40.0
    value = 1200.0 + 450.0 * patches + day * 6.0 * (patches - 2.5) + texture
    return value.astype(np.float32)[None, None]


def write_benchmark_cube(path: Path, size: int, chunk: int = 512) -> Path:
    """Stream a single-band cube (2 fine dates, 3 coarse dates) to ``path`` with dask."""
    dates = sorted({*PAIR_DATES, PREDICT_DATE})
    chunks = (1, 1, chunk, chunk)

    def image(day: str, coarse: bool) -> da.Array:
        template = da.empty((1, 1, size, size), dtype=np.float32, chunks=chunks)
        offset = int(day[-2:])
        return template.map_blocks(_scene_block, day=offset, coarse=coarse, dtype=np.float32)

    fine = da.concatenate(
        [
            image(d, False)
            if d in PAIR_DATES
            else da.full((1, 1, size, size), np.nan, dtype=np.float32, chunks=chunks)
            for d in dates
        ]
    )
    coarse = da.concatenate([image(d, True) for d in dates])
    fine_valid = da.concatenate(
        [
            da.full((1, size, size), d in PAIR_DATES, dtype=bool, chunks=(1, chunk, chunk))
            for d in dates
        ]
    )
    coarse_valid = da.ones((len(dates), size, size), dtype=bool, chunks=(1, chunk, chunk))
    coords = {
        "time": np.array(dates, dtype="datetime64[ns]"),
        "band": np.array(["nir"], dtype=object),
        "y": 4.5e6 - 30.0 * (np.arange(size) + 0.5),
        "x": 5.0e5 + 30.0 * (np.arange(size) + 0.5),
        "fine_observed": ("time", np.array([d in PAIR_DATES for d in dates])),
        "coarse_observed": ("time", np.ones(len(dates), dtype=bool)),
    }
    cube = xr.Dataset(
        {
            "fine": (("time", "band", "y", "x"), fine),
            "fine_valid": (("time", "y", "x"), fine_valid),
            "coarse": (("time", "band", "y", "x"), coarse),
            "coarse_valid": (("time", "y", "x"), coarse_valid),
        },
        coords=coords,
        attrs={"stfcube_schema": "cube/1"},
    ).rio.write_crs("EPSG:32633")
    cube.to_zarr(path, mode="w", consolidated=False)
    return path


class PeakMemory:
    """Samples the RSS of this process plus its children; ``.peak`` in bytes."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _warm_kernel() -> None:
    """Load the STARFM kernel (numba cache) in this process with a tiny call."""
    tiny = np.full((1, 64, 64), 1000.0, dtype=np.float32)
    starfm(tiny, tiny, tiny)


def bare_kernel_seconds(cube_path: Path, threads: int, repeats: int) -> float:
    """Median time of one whole-image kernel call on in-memory arrays (after a warm-up)."""
    cube = xr.open_zarr(cube_path, consolidated=False)
    pairs = [np.datetime64(d, "ns") for d in PAIR_DATES]
    fine = cube["fine"].sel(time=pairs, band="nir").values
    coarse = cube["coarse"].sel(time=pairs, band="nir").values
    pred = cube["coarse"].sel(time=[np.datetime64(PREDICT_DATE, "ns")], band="nir").values
    numba.set_num_threads(threads)
    _warm_kernel()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        starfm(fine, coarse, pred)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def overhead(size: int, tile: int, repeats: int, workdir: Path) -> None:
    cube = write_benchmark_cube(workdir / "overhead_cube.zarr", size, chunk=tile)
    bare = bare_kernel_seconds(cube, threads=2, repeats=repeats)
    spec = ClusterSpec(workers=2, threads_per_worker=1)
    times = []
    with dask_client(spec) as client:
        # worker start and the kernels' JIT-cache load are one-off costs, not pipeline overhead
        client.run(_warm_kernel)
        for k in range(repeats):
            start = time.perf_counter()
            report = fuse(
                cube, workdir / f"fused_{k}.zarr", dates=[PREDICT_DATE], tile=tile, client=client
            )
            times.append(time.perf_counter() - start)
    piped = statistics.median(times)
    print(f"\n== overhead: {size} x {size}, 1 band, 2 pairs -> 1 date, W = 50, tile {tile} ==")
    print(f"medians of {repeats} runs each")
    print(f"bare kernel call (2 numba threads)     : {bare:8.2f} s")
    print(
        f"pipeline fuse (2 workers x 1 thread)  : {piped:8.2f} s  ({report.tiles_computed} tiles)"
    )
    print(f"ratio pipeline / bare kernel           : {piped / bare:8.3f}  (target <= 1.15)")


def large(size: int, tile: int, workdir: Path) -> None:
    start = time.perf_counter()
    with PeakMemory() as mem:
        cube = write_benchmark_cube(workdir / "large_cube.zarr", size, chunk=tile)
        written = time.perf_counter() - start
        with dask_client(ClusterSpec(workers=2, threads_per_worker=1)) as client:
            started = time.perf_counter()
            report = fuse(
                cube,
                workdir / "large_fused.zarr",
                dates=[PREDICT_DATE],
                pairs="before",
                tile=tile,
                client=client,
            )
            fused = time.perf_counter() - started
    print(f"\n== scale: {size} x {size}, 1 band, 1 pair -> 1 date, W = 50, tile {tile} ==")
    print(f"cube written (streamed)                : {written:8.1f} s")
    print(
        f"fuse on 2 workers x 1 thread           : {fused:8.1f} s  ({report.tiles_computed} tiles)"
    )
    print(f"peak RSS, all processes                : {mem.peak / 2**30:8.2f} GiB  (target < 4)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overhead-size", type=int, default=1536)
    parser.add_argument("--large-size", type=int, default=10000)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="overhead runs (median)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        overhead(args.overhead_size, args.tile, args.repeats, Path(tmp))
        if args.large_size:
            large(args.large_size, args.tile, Path(tmp))


if __name__ == "__main__":
    main()
