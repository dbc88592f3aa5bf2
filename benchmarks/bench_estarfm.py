"""Benchmark of the ESTARFM kernel: numba on 1 and 2 threads against the NumPy reference.

Run as ``python3 dev.py bench estarfm`` (``--reference-rows N`` times the NumPy reference on
the first N rows only and scales it to the image). Cases:

* 480x480x3, two pairs -> one date, the program's parameters (w = 25, 4 classes), seamless
  mode: a seeded synthetic scene (fields of 8x8 pixels, coarse = 16x16 block means);
* the oracle run (``../shared/oracle/estarfm_idl``, kranj_ts 44x45x6, reference mode) when
  ``../shared`` is present: Zhu's IDL program took 7.2 s there under GDL (another machine).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
from bench_starfm import best_time

from stfcube.kernels.estarfm import EstarfmParams, estarfm, estarfm_tile, seamless_thresholds

SHARED = Path(os.environ.get("STFCUBE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
KRANJ = SHARED / "data" / "kranj_ts"
SIZE, RATIO = 480, 16


def _synthetic() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F1, F2 (2, 3, 480, 480), C1, C2 (block means on the fine grid) and C0 (1, 3, ...)."""
    rng = np.random.default_rng(0)
    cells = rng.normal(2500, 400, (3, SIZE // 8, SIZE // 8))
    base = np.kron(cells, np.ones((1, 8, 8)))
    images = [base * g + rng.normal(0, 60, base.shape) for g in (1.0, 1.08, 1.2)]

    def coarse(image: np.ndarray) -> np.ndarray:
        means = image.reshape(3, SIZE // RATIO, RATIO, SIZE // RATIO, RATIO).mean(axis=(2, 4))
        return np.kron(means, np.ones((1, RATIO, RATIO)))

    fine = np.stack([images[0], images[2]])
    return fine, np.stack([coarse(images[0]), coarse(images[2])]), coarse(images[1])[None]


def _kranj() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if not KRANJ.is_dir():
        return None
    import rasterio

    def read(name: str, scale: float = 1.0) -> np.ndarray:
        with rasterio.open(KRANJ / name) as src:
            return (src.read().astype(np.float32) * np.float32(scale)).astype(np.float64)

    fine = np.stack(
        [
            read("landsat_filled/2020068_191-28.tif_filled_kranj.tif"),
            read("landsat_filled/2020093_190-28.tif_filled_kranj.tif"),
        ]
    )
    modis = [read(f"modis_filled/2020{d:03d}_18-04_kranj.tif", 1e4) for d in (68, 93, 77)]
    return fine, np.stack(modis[:2]), modis[2]


def _rows(label: str, pixels: int, timed: list[tuple[str, int, float]]) -> None:
    reference = timed[-1][2]
    print(label)
    print(f"{'engine':<10} {'threads':>7} {'seconds':>9} {'Mpixel/s':>9} {'x NumPy':>8}")
    for engine, threads, seconds in timed:
        rate = pixels / seconds / 1e6
        print(f"{engine:<10} {threads:>7} {seconds:>9.3f} {rate:>9.3f} {reference / seconds:>8.1f}")


def _numba_times(run: Callable[[], object], repeats: int) -> list[tuple[str, int, float]]:
    timed = []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        timed.append(("numba", threads, best_time(run, repeats)))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return timed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="numba runs per thread count")
    parser.add_argument(
        "--reference-rows", type=int, default=8, help="rows the NumPy reference computes"
    )
    args = parser.parse_args(argv)
    fine, coarse, pred = _synthetic()
    params = EstarfmParams()
    limits = seamless_thresholds(fine, params)

    def tile(window: tuple[int, int, int, int], engine: str) -> object:
        return estarfm_tile(fine, coarse, pred, limits, params, window=window, engine=engine)

    tile((0, 1, 0, SIZE), "numba")  # JIT / cache load
    timed = _numba_times(lambda: tile((0, SIZE, 0, SIZE), "numba"), args.repeats)
    strip = (SIZE // 2, SIZE // 2 + args.reference_rows, 0, SIZE)
    seconds = best_time(lambda: tile(strip, "reference"), 1)
    timed.append(("numpy-ref", 1, seconds * SIZE / args.reference_rows))
    _rows(
        f"ESTARFM {SIZE}x{SIZE}x3 (synthetic, seeded), 2 pairs -> 1 date, w=25, seamless; "
        f"NumPy reference timed on {args.reference_rows} middle rows, scaled to {SIZE}",
        SIZE * SIZE,
        timed,
    )
    case = _kranj()
    if case is None:
        return
    reference = EstarfmParams(mode="reference")
    timed = _numba_times(lambda: estarfm(*case, reference), args.repeats)
    timed.append(
        ("numpy-ref", 1, best_time(lambda: estarfm(*case, reference, engine="reference"), 1))
    )
    print()
    _rows(
        "oracle case kranj_ts 44x45x6, reference mode; Zhu's IDL program under GDL: 7.2 s",
        44 * 45,
        timed,
    )


if __name__ == "__main__":
    main()
