"""Benchmark of the FSDAF kernel: numba on 1 and 2 threads against the NumPy reference, the
share spent in the thin-plate spline, and how the cost grows with the image size.

Run as ``python3 dev.py bench fsdaf`` (``--reference-rows N`` times the NumPy reference
smoothing on N rows only and scales it to the image; ``--sizes`` the seamless sizes). Case:
480x480x3, one pair -> one date, ratio 16, the program's defaults (w = 20, 20 similar pixels):
fsdaf_lgc_sim with its SVM class map as in ``../shared/oracle/fsdaf_idl`` when ``../shared`` is
present, else a seeded synthetic scene. For context only (other program, loaded VM): Zhu's IDL
code under GDL took 278 s on this case.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numba
import numpy as np
from bench_starfm import best_time

from stfcube.kernels.fsdaf import FsdafParams, fsdaf, fsdaf_program
from stfcube.kernels.fsdaf import _ref as reference
from stfcube.kernels.fsdaf._program import change_step
from stfcube.kernels.fsdaf._tps import tps_exact

SHARED = Path(os.environ.get("STFCUBE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DATA = SHARED / "data" / "fsdaf_lgc_sim"
SIZE, RATIO = 480, 16


def _scene(
    size: int = SIZE, synthetic: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """F1, C1, C2 on the fine grid (block-constant) and the class map."""
    if DATA.is_dir() and size == SIZE and not synthetic:

        def read(name: str, dtype: str = "<i2", bands: int = 3) -> np.ndarray:
            return np.fromfile(DATA / name, dtype=dtype).reshape(bands, SIZE, SIZE)

        classes = read("Landsat20041126_SVM_classification", "u1", 1)[0]
        images = [read(n).astype(np.float64) for n in ("Landsat20041126", "MODIS20041126")]
        pred = read("MODIS20041228").astype(np.float64)
        return images[0], images[1], pred, classes, "fsdaf_lgc_sim"
    rng = np.random.default_rng(0)
    classes = np.kron(rng.integers(1, 5, (size // 8, size // 8)), np.ones((8, 8), dtype=int))
    base = np.array(
        [[900.0, 1100.0, 2300.0], [600, 800, 1500], [1200, 1500, 3500], [400, 500, 900]]
    )
    fine = np.moveaxis(base[classes - 1], -1, 0) + rng.normal(0, 60, (3, size, size)).round()
    change = np.array([[-250.0, -390, -310], [-200, -330, 16], [-240, -280, -750], [96, 236, -940]])
    later = fine + np.moveaxis(change[classes - 1], -1, 0)

    def coarse(image: np.ndarray) -> np.ndarray:
        means = image.reshape(3, size // RATIO, RATIO, size // RATIO, RATIO).mean(axis=(2, 4))
        return np.kron(means, np.ones((1, RATIO, RATIO)))

    return fine, coarse(fine), coarse(later), classes, "synthetic (seeded)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="numba runs per thread count")
    parser.add_argument("--reference-rows", type=int, default=4, help="rows of the NumPy run")
    parser.add_argument("--sizes", default="480,2000", help="seamless image sizes (px)")
    args = parser.parse_args(argv)
    fine, coarse, pred, classes, source = _scene()
    params = FsdafParams(truncate=True)
    small = FsdafParams(window_radius=3, n_similar=5, block_size=2)
    fsdaf_program(
        fine[:, :64, :64], coarse[:, :64, :64], pred[:, :64, :64], small, classes=classes[:64, :64]
    )
    rows, cols = np.indices((SIZE, SIZE), dtype=np.float64)
    centres = np.stack([rows[7::16, 7::16].ravel() + 0.5, cols[7::16, 7::16].ravel() + 0.5], 1)
    points = np.stack([rows.ravel(), cols.ravel()], axis=1)
    results = []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        total = best_time(
            lambda: fsdaf_program(fine, coarse, pred, params, classes=classes), args.repeats
        )
        spline = best_time(
            lambda: tps_exact(pred[:, 7::16, 7::16].reshape(3, -1), centres, points), 1
        )
        results.append(("numba", threads, total, spline))
    step = change_step(fine, coarse, pred, classes, params)
    threshold = fine.reshape(3, -1).std(axis=1, ddof=1) * 2 / step.n_classes
    window = (0, args.reference_rows, 0, SIZE)
    smooth = best_time(
        lambda: reference.smooth_sums(fine, step.change, threshold, 20, 20, window), 1
    )
    change_seconds = results[-1][2] - results[-1][3]
    results.append(("numpy-ref", 1, smooth * SIZE / args.reference_rows + change_seconds, 0.0))
    print(f"FSDAF reference mode {SIZE}x{SIZE}x3 ({source}), w=20, 20 similar px, ratio 16")
    print(f"NumPy reference smoothing timed on {args.reference_rows} rows, scaled to {SIZE}")
    print(f"{'engine':<10} {'threads':>7} {'seconds':>9} {'spline %':>9} {'x NumPy':>8}")
    for engine, threads, seconds, spline in results:
        share, ratio = 100 * spline / seconds, results[-1][2] / seconds
        print(f"{engine:<10} {threads:>7} {seconds:>9.2f} {share:>9.1f} {ratio:>8.1f}")
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    seamless = FsdafParams(mode="seamless")
    print("seamless mode, synthetic scenes, numba, all threads: growth with the image size")
    for size in (int(s) for s in args.sizes.split(",")):
        f1, c1, c2, cls, _ = _scene(size, synthetic=True)
        native = [c[:, ::RATIO, ::RATIO] for c in (c1, c2)]
        start = time.perf_counter()
        fsdaf(f1, *native, RATIO, seamless, classes=cls)
        seconds = time.perf_counter() - start
        print(f"  {size:>5} px: {seconds:8.2f} s  {1e6 * seconds / size**2:6.2f} us/px")


if __name__ == "__main__":
    main()
