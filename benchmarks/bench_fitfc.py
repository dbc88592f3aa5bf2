"""Benchmark of the Fit-FC kernel: numba on 1 and 2 threads against the NumPy reference.

Run as ``python3 dev.py bench fitfc`` (``--reference-rows N`` times the NumPy reference on the
first N rows only and scales it to the image). Case: 480x480x3, one pair -> one date, W = 1,
w0 = 20, N_S = 20, ratio 16: fsdaf_lgc_sim as in ``../shared/oracle/fitfc`` when ``../shared``
is present, else a seeded synthetic scene of the same size. For context only (other machine,
other program): Q. Wang's MATLAB code under Octave took about 460 s (quiet machine) and 1004 s
(loaded 2-vCPU VM) for the spatial filter of this case.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numba
import numpy as np
from bench_starfm import best_time

from stfcube.kernels.fitfc import FitfcParams, rm_rc, spatial_filter

SHARED = Path(os.environ.get("STFCUBE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FSDAF = SHARED / "data" / "fsdaf_lgc_sim"
SIZE, RATIO = 480, 16


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """F1, C1 and C2 (coarse = every 16th pixel of the block-constant MODIS images)."""
    if FSDAF.is_dir():

        def read(name: str) -> np.ndarray:
            raw = np.fromfile(FSDAF / name, dtype="<i2").reshape(3, SIZE, SIZE)
            return raw.astype(np.float64)

        fine = read("Landsat20041126")
        coarse = read("MODIS20041126")[:, ::RATIO, ::RATIO]
        return fine, coarse, read("MODIS20041228")[:, ::RATIO, ::RATIO], "fsdaf_lgc_sim"
    rng = np.random.default_rng(0)
    cells = rng.normal(2500, 400, (3, SIZE // 8, SIZE // 8))
    fine = np.kron(cells, np.ones((1, 8, 8))) + rng.normal(0, 60, (3, SIZE, SIZE))
    coarse = fine.reshape(3, SIZE // RATIO, RATIO, SIZE // RATIO, RATIO).mean(axis=(2, 4))
    return fine, coarse, coarse * 1.1 + rng.normal(0, 50, coarse.shape), "synthetic (seeded)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="numba runs per thread count")
    parser.add_argument(
        "--reference-rows", type=int, default=SIZE, help="rows the NumPy reference computes"
    )
    args = parser.parse_args(argv)
    fine, coarse, coarse_pred, source = _scene()
    params = FitfcParams()
    z2 = rm_rc(fine, coarse, coarse_pred, RATIO, params)
    spatial_filter(fine, z2, params, window=(0, 1, 0, SIZE), engine="numba")  # JIT / cache load
    rm_rc_seconds = best_time(lambda: rm_rc(fine, coarse, coarse_pred, RATIO, params), 3)
    rows = []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        seconds = best_time(lambda: spatial_filter(fine, z2, params, engine="numba"), args.repeats)
        rows.append(("numba", threads, seconds + rm_rc_seconds))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    strip = (0, args.reference_rows, 0, SIZE)
    seconds = best_time(
        lambda: spatial_filter(fine, z2, params, window=strip, engine="reference"), 1
    )
    rows.append(("numpy-ref", 1, seconds * SIZE / args.reference_rows + rm_rc_seconds))
    reference = rows[-1][2]
    print(f"Fit-FC {SIZE}x{SIZE}x3 ({source}), W=1, w0=20, N_S=20; RM+RC {rm_rc_seconds:.3f} s")
    if args.reference_rows < SIZE:
        print(f"NumPy reference timed on {args.reference_rows} rows, scaled to {SIZE}")
    print("context: the MATLAB program under Octave took ~460 s (SF only, another machine)")
    print(f"{'engine':<10} {'threads':>7} {'seconds':>9} {'x NumPy':>8}")
    for engine, threads, total in rows:
        print(f"{engine:<10} {threads:>7} {total:>9.3f} {reference / total:>8.1f}")


if __name__ == "__main__":
    main()
