"""Benchmark of the STARFM kernel: numba on 1 and 2 threads against the NumPy reference.

Run as ``python3 dev.py bench starfm`` (``--quick`` for a smaller run). Cases, one band, W = 50:

* 480x480, two pairs -> one date;
* 2000x2000, one pair -> one date (``--quick``: 1000x1000);
* side by side with the USDA C program's given single-thread times (the program is not available
  here; its times were measured on this machine class, see issue 18): a simulated site
  (``stfcube simulate SITE --size 512 --days 9 --seed 7``, built in-process, nir band, the first
  and last fine dates as pairs -> the 7 coarse dates between, coarse upsampled to the fine grid as
  ``average`` resampling does) and fsdaf_lgc_sim band 3 mirrored to 1200 px, one pair -> one date.
  Each is timed on one thread (median of 3); the NumPy reference on a 96x96 centre crop is printed
  with it as the calibration, since this VM's speed varies by up to 2x between days.

Inputs are built as the oracle README (section 6) describes when ``../shared`` is present (band 3
of fsdaf_lgc_sim, mirrored to the size), else a seeded synthetic image with similar statistics.
Throughput is counted in evaluated candidates: pixels x window cells x pairs, per second and per
thread. The NumPy reference runs on a centre crop (its time is scaled by pixel count) because it
is too slow for whole images.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

from stfcube.kernels._arrays import pad_yx
from stfcube.kernels.starfm import StarfmParams, _prepare, slice_thresholds

SHARED = Path(os.environ.get("STFCUBE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FSDAF = SHARED / "data" / "fsdaf_lgc_sim"


def _oracle_like(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Band 3 of Landsat/MODIS 2004-11-26 and MODIS 2004-12-28, mirrored to ``size``."""
    import rasterio

    def band3(name: str) -> np.ndarray:
        with rasterio.open(FSDAF / name) as dataset:
            image = dataset.read(3)
        pad = size - image.shape[0]
        return np.pad(image, ((0, pad), (0, pad)), mode="symmetric")[:size, :size]

    fine = band3("Landsat20041126")
    return fine, band3("MODIS20041126"), band3("MODIS20041228"), "fsdaf_lgc_sim b3 mirrored"


def _synthetic(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Seeded patchy image with sd ~370 around 2500 (like fsdaf b3) and coarse/temporal noise."""
    rng = np.random.default_rng(0)
    cells = rng.normal(2500, 360, size=(size // 8 + 1, size // 8 + 1))
    fine = np.kron(cells, np.ones((8, 8)))[:size, :size] + rng.normal(0, 60, (size, size))
    coarse = fine + rng.normal(0, 120, fine.shape)
    coarse_pred = coarse + 300 + rng.normal(0, 150, fine.shape)
    images = [np.clip(a, 0, 10000).astype(np.int16) for a in (fine, coarse, coarse_pred)]
    return *images, "synthetic (seeded)"


def _scene(size: int, pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    fine, coarse, coarse_pred, source = (_oracle_like if FSDAF.is_dir() else _synthetic)(size)
    # The second pair is the first shifted by one row/column: different data, same statistics.
    fines = np.stack([np.roll(fine, p, axis=(0, 1)) for p in range(pairs)])
    coarses = np.stack([np.roll(coarse, p, axis=(0, 1)) for p in range(pairs)])
    return fines, coarses, coarse_pred[None], source


def _prepared(fine, coarse, coarse_pred, params: StarfmParams):
    """Engine inputs of the whole image (what ``starfm`` builds before calling an engine)."""
    xp = np
    slices = slice_thresholds(fine, params=params)
    halo = params.halo
    nan = np.float32(np.nan)
    padded = [pad_yx(xp, a.astype(np.float32), halo, nan) for a in (fine, coarse, coarse_pred)]
    inputs = _prepare.check_inputs(xp, *padded, None, None, None, None)
    tile = _prepare.prepare_tile(xp, inputs, params, halo)
    consts = _prepare.kernel_constants(params, slices, fine.shape[0], with_classes=False)
    return tile, consts


#: Single-thread seconds of the USDA C program v1.2.2 on this machine class (issue 18), given.
USDA_C_SECONDS = {"site 512 2p->7d": 27.9, "fsdaf b3 1200 1p->1d": 27.4}


def _simulated_group() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """nir of ``simulate --size 512 --days 9 --seed 7``: pairs days 0 and 8, dates 1-7."""
    import tempfile

    import rasterio

    from stfcube.pipeline.simulate import simulate_site

    def read(path: Path, ratio: int = 1) -> np.ndarray:
        with rasterio.open(path) as dataset:
            image = dataset.read(1)
        return np.repeat(np.repeat(image, ratio, axis=0), ratio, axis=1)

    with tempfile.TemporaryDirectory() as folder:
        site = simulate_site(Path(folder) / "site", size=512, days=9, seed=7, bands=("nir",))
        ratio = site.config.sensor.ratio
        fine = np.stack([read(p) for p in site.fine_paths])
        coarse = np.stack([read(site.coarse_paths[d], ratio) for d in (0, 8)])
        coarse_pred = np.stack([read(site.coarse_paths[d], ratio) for d in range(1, 8)])
    return fine, coarse, coarse_pred


def median_time(run: Callable[[], object], repeats: int) -> float:
    """The median of ``repeats`` runs of ``run``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _time_vs_usda(name: str, scene: tuple, crop: int, repeats: int) -> dict:
    """One-thread numba time of ``scene`` (fine, coarse, coarse_pred) and its calibration."""
    from stfcube.kernels.starfm import _numba, _ref

    params = StarfmParams()
    fine, coarse, coarse_pred = scene
    tile, consts = _prepared(fine, coarse, coarse_pred, params)
    run = functools.partial(_numba.predict_sums, tile, consts, np)
    run()  # JIT warm-up (or cache load)
    seconds = median_time(run, repeats)
    start = (fine.shape[1] - crop) // 2
    window = (slice(None), slice(start, start + crop), slice(start, start + crop))
    crop_tile, crop_consts = _prepared(fine[window], coarse[window], coarse_pred[window], params)
    crop_consts = dataclasses.replace(crop_consts, slices=consts.slices)  # whole-image slices
    reference = best_time(functools.partial(_ref.predict_sums, crop_tile, crop_consts, np), 1)
    pairs, pixels, dates = fine.shape[0], fine[0].size, coarse_pred.shape[0]
    return dict(
        case=name,
        seconds=seconds,
        rate=pixels * params.window**2 * pairs * dates / seconds,
        usda=USDA_C_SECONDS[name],
        reference_us=reference / (crop * crop) * 1e6,
    )


def bench_vs_usda(crop: int = 96, repeats: int = 3) -> list[dict]:
    """The issue-18 cases on one thread, against the C program's given times."""
    scenes = {"site 512 2p->7d": _simulated_group()}
    if FSDAF.is_dir():
        fine, coarse, coarse_pred, _ = _oracle_like(1200)
        scenes["fsdaf b3 1200 1p->1d"] = (fine[None], coarse[None], coarse_pred[None])
    numba.set_num_threads(1)
    try:
        return [_time_vs_usda(name, scene, crop, repeats) for name, scene in scenes.items()]
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def print_vs_usda(rows: list[dict]) -> None:
    """The table of :func:`bench_vs_usda`."""
    print(
        "\nvs the USDA C program, 1 thread: 'numba s' measured now (median of 3), 'C s' given "
        "(issue 18, not measured here); calibration = NumPy reference, us per pixel on a 96x96 "
        "crop, measured now"
    )
    header = (
        f"{'case':<22} {'numba s':>8} {'cand/s/date':>12} {'C s':>6} {'x C':>6} {'calib us/px':>12}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['case']:<22} {row['seconds']:>8.3f} {row['rate']:>12.3e} {row['usda']:>6.1f} "
            f"{row['usda'] / row['seconds']:>6.1f} {row['reference_us']:>12.1f}"
        )


def best_time(run: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs of ``run``, in seconds (also used by bench_fitfc)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def bench_case(size: int, pairs: int, crop: int, repeats: int) -> list[dict]:
    """Time numba (1 and 2 threads) on the whole image and the reference on a crop."""
    from stfcube.kernels.starfm import _numba, _ref

    params = StarfmParams()
    fine, coarse, coarse_pred, source = _scene(size, pairs)
    cells = params.window**2
    tile, consts = _prepared(fine, coarse, coarse_pred, params)
    _numba.predict_sums(tile, consts, np)  # JIT warm-up (or cache load)
    rows = []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        seconds = best_time(lambda: _numba.predict_sums(tile, consts, np), repeats)
        rows.append(dict(engine="numba", threads=threads, pixels=size * size, seconds=seconds))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    start = (size - crop) // 2
    window = (slice(None), slice(start, start + crop), slice(start, start + crop))
    crop_tile, crop_consts = _prepared(fine[window], coarse[window], coarse_pred[window], params)
    crop_consts = dataclasses.replace(crop_consts, slices=consts.slices)  # whole-image slices
    seconds = best_time(lambda: _ref.predict_sums(crop_tile, crop_consts, np), 1)
    rows.append(dict(engine="numpy-ref", threads=1, pixels=crop * crop, seconds=seconds))
    reference_per_pixel = seconds / (crop * crop)
    for row in rows:
        row.update(
            case=f"{size}x{size} {pairs}p ({source})",
            rate=row["pixels"] * cells * pairs / row["seconds"] / row["threads"],
            speedup=reference_per_pixel * row["pixels"] / row["seconds"],
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1000x1000 instead of 2000x2000")
    parser.add_argument(
        "--usda-only", action="store_true", help="only the one-thread table against the C program"
    )
    args = parser.parse_args(argv)
    if args.usda_only:
        print_vs_usda(bench_vs_usda())
        return
    big = 1000 if args.quick else 2000
    rows = bench_case(480, 2, crop=96, repeats=3)
    rows += bench_case(big, 1, crop=96, repeats=1 if big > 1000 else 2)
    print(
        f"numba threads available: {numba.config.NUMBA_NUM_THREADS}, "
        f"threading layer: {os.environ.get('NUMBA_THREADING_LAYER', 'default')}"
    )
    print(
        "candidates = pixels x window cells (W=50: 2500) x pairs; NumPy reference timed on a "
        "96x96 centre crop, speed-up scaled per pixel"
    )
    header = (
        f"{'case':<44} {'engine':<10} {'thr':>3} {'pixels':>9} {'seconds':>9} "
        f"{'cand/s/thread':>14} {'x NumPy':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['case']:<44} {row['engine']:<10} {row['threads']:>3} {row['pixels']:>9} "
            f"{row['seconds']:>9.3f} {row['rate']:>14.3e} {row['speedup']:>8.1f}"
        )
    print_vs_usda(bench_vs_usda())


if __name__ == "__main__":
    main()
