"""Evaluation benchmark: a large fused/truth pair evaluated with bounded memory.

Run with ``python3 dev.py bench evaluate`` (defaults below) or, e.g.::

    python3 dev.py bench evaluate --size 10000 --dates 2 --chunk 1024

Streams a ``--size`` square single-band truth cube and a fused store (``--dates`` dates,
chunks ``--chunk``) to Zarr with dask, never holding an image in memory, then runs
:func:`stfcube.pipeline.evaluate.evaluate` on them (all metrics, quicklooks, scatter plots, time
series, Markdown and HTML report). Prints the wall time of both phases and the peak resident memory
of each, summed over this process and its children and sampled every 0.05 s in a thread, next to
the size of one full image for scale.

The bare baseline, in the same run: read both stores' arrays with zarr, one (date, band) image
at a time, and compute the RMSE over the valid pixels with NumPy. ``evaluate / bare`` is what
stfcube's full evaluation (all metrics, pictures, report) costs over that (goal: <= 3).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import psutil
import xarray as xr
import zarr

from stfcube.pipeline.evaluate import evaluate

MIB = 2**20


class PeakRss:
    """Peak resident set size of this process plus all its children, sampled in a thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        """RSS in bytes of this process and its (recursive) children now."""
        proc = psutil.Process()
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self.peak = self.current()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


@contextmanager
def phase(name: str, results: dict[str, dict[str, float]]) -> Iterator[None]:
    """Time a phase and record its wall time and peak RSS under ``results[name]``."""
    start = time.perf_counter()
    with PeakRss() as rss:
        yield
    results[name] = {"wall_s": time.perf_counter() - start, "peak_rss_mib": rss.peak / MIB}


def _field_block(block: np.ndarray, block_info: dict | None = None, *, day: int, noise: float):
    """Deterministic reflectance-like chunk from its global position, plus seeded noise."""
    (r0, r1), (c0, c1) = block_info[None]["array-location"][-2:]
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    value = 0.25 + 0.1 * np.sin(yy / 150.0) * np.cos(xx / 170.0) + 0.002 * day
    value += 0.03 * (((yy // 97) + (xx // 113)) % 3)
    if noise:
        rng = np.random.default_rng([day, r0, c0])
        value += noise * rng.standard_normal(value.shape).astype(np.float32)
    return value.astype(np.float32)[None, None]


def _image(size: int, chunk: int, day: int, noise: float) -> da.Array:
    template = da.empty((1, 1, size, size), dtype=np.float32, chunks=(1, 1, chunk, chunk))
    return da.map_blocks(_field_block, template, day=day, noise=noise, dtype=np.float32)


def write_pair(root: Path, size: int, n_dates: int, chunk: int) -> tuple[Path, Path]:
    """Stream a single-band truth cube and a fused store of ``size``² pixels to ``root``."""
    times = pd.date_range("2024-05-01", periods=n_dates, freq="16D")
    coords = {
        "time": times,
        "band": ["nir"],
        "y": 4_500_000.0 - 30.0 * (np.arange(size) + 0.5),
        "x": 500_000.0 + 30.0 * (np.arange(size) + 0.5),
    }
    dims4, dims3 = ("time", "band", "y", "x"), ("time", "y", "x")
    truth = da.concatenate([_image(size, chunk, d, 0.0) for d in range(n_dates)], axis=0)
    fused = da.concatenate([_image(size, chunk, d, 0.01) for d in range(n_dates)], axis=0)
    valid = da.ones((n_dates, size, size), dtype=bool, chunks=(1, chunk, chunk))
    valid[:, : size // 20] = False  # a masked strip, as clouds would be
    cube = xr.Dataset(
        {"fine": (dims4, truth), "fine_valid": (dims3, valid)},
        coords={**coords, "fine_observed": ("time", np.ones(n_dates, dtype=bool))},
        attrs={"stfcube_schema": "cube/1", "coarse_ratio": 16},
    )
    pairs = {f"{t:%Y-%m-%d}": [f"{times[0]:%Y-%m-%d}"] for t in times}
    fused_ds = xr.Dataset(
        {"fused": (dims4, fused), "quality": (dims4, da.ones_like(fused, dtype=np.uint16))},
        coords=coords,
        attrs={"stfcube_schema": "fused/1", "method": "synthetic", "pairs_used": json.dumps(pairs)},
    )
    cube_path, fused_path = root / "truth.zarr", root / "fused.zarr"
    cube.to_zarr(cube_path, mode="w", consolidated=False)
    fused_ds.to_zarr(fused_path, mode="w", consolidated=False)
    return fused_path, cube_path


def bare_rmse(fused_path: Path, cube_path: Path) -> list[float]:
    """RMSE per (date, band) from whole images read with zarr and NumPy alone."""
    fused = zarr.open_group(fused_path, mode="r")["fused"]
    truth = zarr.open_group(cube_path, mode="r")
    values, valid = truth["fine"], truth["fine_valid"]
    out = []
    for t, b in np.ndindex(*fused.shape[:2]):
        error = fused[t, b].astype(np.float64) - values[t, b]
        keep = valid[t] & np.isfinite(error)
        out.append(float(np.sqrt(np.mean(error[keep] ** 2))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000, help="image side in pixels")
    parser.add_argument("--dates", type=int, default=2, help="number of evaluated dates")
    parser.add_argument("--chunk", type=int, default=1024, help="Zarr chunk side in pixels")
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores go")
    parser.add_argument("--keep", action="store_true", help="keep the stores and the report")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-evaluate-", dir=args.workdir))
    results: dict[str, dict[str, float]] = {}
    try:
        with phase("build stores", results):
            fused_path, cube_path = write_pair(root, args.size, args.dates, args.chunk)
        with phase("evaluate", results):
            report = evaluate(
                fused_path, cube_path, root / "report", pixels=[(args.size // 2, args.size // 2)]
            )
        with phase("bare baseline", results):
            bare = bare_rmse(fused_path, cube_path)
        image_mib = args.size * args.size * 4 / MIB
        print(
            f"size {args.size} x {args.size}, {args.dates} date(s), 1 band, chunk {args.chunk}; "
            f"one float32 image = {image_mib:.0f} MiB, fused + truth = "
            f"{2 * args.dates * image_mib:.0f} MiB"
        )
        for name, res in results.items():
            print(
                f"{name:>13}: wall {res['wall_s']:7.1f} s, peak RSS {res['peak_rss_mib']:7.0f} MiB"
            )
        mean = next(r for r in report.band_rows if r["date"] == "mean")
        print(
            f"metrics (mean over dates): RMSE {mean['rmse']:.5f}, r {mean['r']:.4f}, "
            f"SSIM {mean['ssim']:.4f}, n {mean['count']:,}; report in {report.out_dir}"
        )
        ratio = results["evaluate"]["wall_s"] / results["bare baseline"]["wall_s"]
        print(
            f"evaluate / bare: {ratio:.2f}x (goal <= 3; bare = zarr reads + NumPy RMSE, "
            f"mean RMSE {np.mean(bare):.5f})"
        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
