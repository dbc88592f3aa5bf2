"""Fit-FC kernel (issue 15): Q. Wang's MATLAB program, checked against its Octave run on
fsdaf_lgc_sim (acceptance 1) and stage by stage on tiny arrays (acceptance 2)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from stfcube.kernels.fitfc import FitfcParams, cell_weights, fitfc, rm_rc, spatial_filter
from stfcube.kernels.fitfc._regression import EPS, regression, upsample_bicubic

ORACLE_RUN = "oracle/fitfc/fsdaf_lgc_sim_p20041126_to_20041228_W1"


def keys(x: float) -> float:
    """Keys' cubic kernel, a = -0.5, written out from its definition."""
    t = abs(x)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t < 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def fold(j: int, n: int) -> int:
    return -j - 1 if j < 0 else (2 * n - 1 - j if j >= n else j)


def test_params_validate_and_default_scale() -> None:
    assert FitfcParams().scale == 20.5
    assert FitfcParams(filter_radius=3, distance_scale=2.0).scale == 2.0
    with pytest.raises(ValueError, match="n_similar must lie in"):
        FitfcParams(filter_radius=1, n_similar=10)
    with pytest.raises(ValueError, match="mode must be one of"):
        FitfcParams(mode="fast")
    with pytest.raises(ValueError, match="regression_radius must be an integer"):
        FitfcParams(regression_radius=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="red_band=5 is not a band"):
        spatial_filter(np.ones((3, 4, 4)), np.ones((3, 4, 4)), FitfcParams(1, 1, 2, red_band=5))


def test_regression_window_is_truncated_at_the_border() -> None:
    rng = np.random.default_rng(1)
    c1, c2 = rng.normal(100, 20, (2, 1, 4, 5))
    a, b, residual = regression(c1, c2, 1, skip_invalid=False)
    for y in range(4):
        for x in range(5):
            w1 = c1[0, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
            w2 = c2[0, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
            cov = (w1 * w2).mean() - w1.mean() * w2.mean()
            slope = cov / (w1.var() + EPS)
            assert a[0, y, x] == pytest.approx(slope, rel=1e-10)
            assert b[0, y, x] == pytest.approx(w2.mean() - slope * w1.mean(), rel=1e-10)
    np.testing.assert_allclose(residual, c2 - (a * c1 + b))
    assert w1.shape == (2, 2)  # the last window, at the corner, holds 2 x 2 pixels


def test_seamless_regression_leaves_invalid_pixels_out() -> None:
    rng = np.random.default_rng(2)
    c1, c2 = rng.normal(100, 20, (2, 1, 5, 5))
    c2[0, 2, 2] = np.nan
    a_ref = regression(c1, c2, 1, skip_invalid=False)[0]
    a_seam = regression(c1, c2, 1, skip_invalid=True)[0]
    assert np.isnan(a_ref[0, 1:4, 1:4]).all() and np.isfinite(a_seam).all()
    assert a_ref[0, 0, 0] == a_seam[0, 0, 0]  # the corner window misses the NaN
    w1, w2 = c1[0, 1:4, 1:4].ravel(), c2[0, 1:4, 1:4].ravel()
    keep = np.isfinite(w2)
    cov = (w1[keep] * w2[keep]).mean() - w1[keep].mean() * w2[keep].mean()
    assert a_seam[0, 2, 2] == pytest.approx(cov / (w1[keep].var() + EPS), rel=1e-10)


def test_bicubic_is_keys_with_symmetric_folding() -> None:
    rng = np.random.default_rng(3)
    coarse = rng.normal(0, 50, (1, 5, 6))
    ratio = 4
    got = upsample_bicubic(coarse, ratio, (0, 0), (20, 24))

    def taps(i: int, n: int) -> list[tuple[int, float]]:
        u = (i + 0.5) / ratio - 0.5
        js = range(math.floor(u) - 1, math.floor(u) + 3)
        total = sum(keys(u - j) for j in js)
        return [(fold(j, n), keys(u - j) / total) for j in js]

    for y in range(20):
        for x in range(24):
            direct = sum(
                wy * wx * coarse[0, jy, jx] for jy, wy in taps(y, 5) for jx, wx in taps(x, 6)
            )
            assert got[0, y, x] == pytest.approx(direct, abs=1e-9)


def test_rm_rc_recovers_a_linear_change_exactly() -> None:
    rng = np.random.default_rng(4)
    fine = rng.normal(1000, 100, (2, 16, 12))
    coarse = fine.reshape(2, 4, 4, 3, 4).mean(axis=(2, 4))
    z2 = rm_rc(fine, coarse, 1.5 * coarse + 20, 4)
    np.testing.assert_allclose(z2, 1.5 * fine + 20, rtol=1e-9)


@pytest.mark.parametrize("engine", ["numba", "reference"])
def test_ties_go_to_the_lowest_column_major_cell_and_edges_replicate(engine: str) -> None:
    # every distance ties (constant red and NIR): the first 3 cells in column-major order win,
    # i.e. column offset -2, rows offsets -2, -1, 0, clamped to the image (edge replication)
    fine = np.full((3, 7, 7), 100.0)
    z2 = np.arange(49, dtype=np.float64).reshape(1, 7, 7).repeat(3, axis=0)
    params = FitfcParams(regression_radius=0, filter_radius=2, n_similar=3)
    got = spatial_filter(fine, z2, params, engine=engine)
    w = cell_weights(2, params.scale)[:3]  # cells (dc, dr) = (0, 0), (0, 1), (0, 2)
    for y in range(7):
        for x in range(7):
            rows = [min(max(y + dr, 0), 6) for dr in (-2, -1, 0)]
            col = max(x - 2, 0)
            expected = sum(wk * z2[0, r, col] for wk, r in zip(w, rows, strict=True)) / w.sum()
            assert got[1, y, x] == pytest.approx(expected, rel=1e-12)


def test_cell_weights_are_column_major_inverse_distance() -> None:
    weights = cell_weights(20, 20.5)
    assert weights.shape == (41 * 41,)
    assert weights[20 * 41 + 20] == 1.0
    assert weights[0] == pytest.approx(1 / (1 + math.sqrt(800) / 20.5))
    assert weights[3] == pytest.approx(1 / (1 + math.hypot(20, 17) / 20.5))


@pytest.mark.parametrize("mode", ["reference", "seamless"])
def test_numba_matches_the_numpy_reference(mode: str) -> None:
    rng = np.random.default_rng(5)
    fine = rng.integers(0, 6, (3, 30, 34)).astype(np.float64)  # many ties
    z2 = rng.normal(500, 100, (3, 30, 34))
    fine[1, 3:5, 20:22] = np.nan
    z2[2, 10:12, 5:7] = np.nan
    params = FitfcParams(filter_radius=4, n_similar=7, mode=mode)
    window = (2, 28, 0, 31)
    ref = spatial_filter(fine, z2, params, window=window, engine="reference")
    fast = spatial_filter(fine, z2, params, window=window, engine="numba")
    np.testing.assert_allclose(fast, ref, rtol=1e-12, equal_nan=True)
    assert np.isfinite(ref).mean() > 0.8
    whole = spatial_filter(fine, z2, params, engine="numba")
    np.testing.assert_array_equal(whole[:, 2:28, 0:31], fast)


def test_modes_agree_without_nodata() -> None:
    rng = np.random.default_rng(6)
    fine = rng.normal(1000, 200, (3, 24, 24))
    coarse = fine.reshape(3, 3, 8, 3, 8).mean(axis=(2, 4))
    pred = coarse * rng.normal(1.1, 0.05, coarse.shape)
    small = {"filter_radius": 3, "n_similar": 5}
    seamless = fitfc(fine, coarse, pred, 8, FitfcParams(**small, mode="seamless"))
    reference = fitfc(fine, coarse, pred, 8, FitfcParams(**small))
    np.testing.assert_array_equal(seamless, reference)


def test_all_band_similarity_sums_every_band() -> None:
    rng = np.random.default_rng(7)
    fine = rng.normal(100, 30, (2, 15, 15))
    z2 = rng.normal(500, 80, (2, 15, 15))
    small = {"filter_radius": 3, "n_similar": 6}
    all_bands = spatial_filter(fine, z2, FitfcParams(**small, similarity="all_bands"))
    red_nir = spatial_filter(fine, z2, FitfcParams(**small, red_band=0, nir_band=1))
    np.testing.assert_array_equal(all_bands, red_nir)


def _read_envi(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<i2").reshape(3, 480, 480).astype(np.float64)


@pytest.mark.shared
def test_oracle_fsdaf_lgc_sim(shared_dir: Path) -> None:
    import tifffile

    data = shared_dir / "data" / "fsdaf_lgc_sim"
    fine = _read_envi(data / "Landsat20041126")
    truth = _read_envi(data / "Landsat20041228")
    coarse = _read_envi(data / "MODIS20041126")[:, ::16, ::16]  # constant 16 x 16 blocks
    coarse_pred = _read_envi(data / "MODIS20041228")[:, ::16, ::16]
    oracle = shared_dir / ORACLE_RUN
    params = FitfcParams(
        regression_radius=1, filter_radius=20, n_similar=20, red_band=1, nir_band=2
    )
    z2 = rm_rc(fine, coarse, coarse_pred, 16, params)
    assert np.abs(z2 - tifffile.imread(oracle / "intermediate_rm_rc.tif")).max() < 0.01
    prediction = spatial_filter(fine, z2, params, engine="numba")
    assert np.abs(prediction - tifffile.imread(oracle / "prediction.tif")).max() < 0.01
    rmse = np.sqrt(((prediction - truth) ** 2).mean(axis=(1, 2)))
    np.testing.assert_allclose(rmse, [108.1, 147.9, 398.1], atol=0.1)
    # the NumPy reference on a border strip (it is slow on the whole image)
    strip = spatial_filter(fine, z2, params, window=(0, 6, 0, 480), engine="reference")
    np.testing.assert_allclose(strip, prediction[:, :6], rtol=1e-12)
