"""FSDAF kernel (issue 14): Zhu's IDL program checked against its GDL run on fsdaf_lgc_sim
(acceptance 1), the quirks of section 4 on tiny arrays (acceptance 3), and the engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stfcube.kernels.fsdaf import FsdafParams, fsdaf, fsdaf_program, isodata_classes
from stfcube.kernels.fsdaf._change import (
    class_fractions,
    clip_bounds,
    distribute_residual,
    heterogeneity,
    locate_quantile,
    purest_samples,
    unmix,
)
from stfcube.kernels.fsdaf._program import block_layout, finish, program_cells
from stfcube.kernels.fsdaf._tps import tps_exact, tps_local

ORACLE_RUN = "oracle/fsdaf_idl/fsdaf_lgc_sim_p20041126_to_20041228"
#: The oracle's RMSE vs truth per band (reflectance x 1e4), its params.json.
ORACLE_RMSE = (98.204, 135.585, 356.598)


def _read(data: Path, name: str, dtype: str = "<i2", bands: int = 3) -> np.ndarray:
    raw = np.fromfile(data / name, dtype=dtype).reshape(bands, 480, 480)
    return raw.astype(np.float64) if bands == 3 else raw[0]


def test_params_validate() -> None:
    assert FsdafParams().patch == 480
    with pytest.raises(ValueError, match="mode must be one of"):
        FsdafParams(mode="fast")
    with pytest.raises(ValueError, match="dn_min"):
        FsdafParams(dn_min=5.0, dn_max=1.0)
    with pytest.raises(ValueError, match="n_similar must not exceed"):
        FsdafParams(window_radius=1, n_similar=10)
    with pytest.raises(ValueError, match="window_radius must be an integer"):
        FsdafParams(window_radius=2.5)  # type: ignore[arg-type]


def test_quantile_index_is_idl_value_locate_in_float32() -> None:
    assert locate_quantile(100, 0.1) == 10 and locate_quantile(100, 0.9) == 90
    assert locate_quantile(7, 0.1) == 0 and locate_quantile(7, 0.9) == 6
    assert locate_quantile(480 * 480, 0.0001) == 23


def test_percentile_clipping_replaces_extremes_by_the_nearest_inside_value() -> None:
    band = np.concatenate([[-5.0, 1.0], np.arange(2.0, 98.0), [12000.0, 99.0]])
    low, high, low_value, high_value = clip_bounds(band, (0.01, 0.99), (0.0, 10000.0))
    # index floor(0.01 * 100) = 1 -> value 1.0 and below go; floor(0.99 * 100) = 99 -> 12000
    assert (low, high, low_value, high_value) == (1.0, 12000.0, 2.0, 99.0)


def test_fractions_zeroed_where_background_is_inside() -> None:
    classes = np.array([[1, 1, 2, 2], [1, 2, 0, 2]])
    cell, n_cells = program_cells((2, 4), 2)
    fractions = class_fractions(classes, np.array([1, 2]), cell, n_cells, np.ones((2, 4), bool))
    np.testing.assert_array_equal(fractions, [[0.75, 0.25], [0.0, 0.0]])


def test_program_cells_send_the_remainder_to_cell_zero() -> None:
    cell, n_cells = program_cells((5, 7), 2)
    assert n_cells == 6 and cell[4].tolist() == [0] * 7 and cell[:, 6].tolist() == [0] * 5
    assert cell[3, 5] == 5


def test_purest_pixels_ties_larger_index_first_and_10_90_trim() -> None:
    fractions = np.ones((12, 1))
    change = np.arange(12.0)
    x, y = purest_samples(fractions, change, 10, (0.1, 0.9))
    # the 10 purest of 12 equal fractions are cells 11 .. 2; their 10-90 % keeps 3 .. 11
    np.testing.assert_array_equal(np.sort(y), np.arange(3.0, 12.0))
    assert x.shape == (9, 1)


def test_unmixing_recovers_class_changes_and_keeps_unsampled_classes_at_start() -> None:
    rng = np.random.default_rng(0)
    fractions = rng.dirichlet([1, 1], 60)
    fractions = np.concatenate([fractions, np.zeros((60, 1))], axis=1)
    change = fractions[:, :2] @ np.array([30.0, -20.0])
    got = unmix(fractions, change[None], num_pure=60, percentiles=(0.0, 1.0))
    np.testing.assert_allclose(got[0, :2], [30.0, -20.0], atol=1e-8)
    assert got[0, 2] == pytest.approx(1 / 3)  # no sample: the solver's start value 1/k


def test_weights_above_cap_take_the_mean() -> None:
    # one coarse cell of 20 px; one pixel's spline change dominates its weight
    tps_change = np.zeros((1, 4, 5))
    tps_change[0, 0, 0] = 1e6
    homogeneity = np.ones((4, 5))
    cell = np.zeros((4, 5), dtype=np.int64)
    out = distribute_residual(tps_change, homogeneity, np.array([[2.0]]), cell, cell == 0, 10.0)
    weight = np.full(20, 1e-6)
    weight[0] = 1e6 + 1e-6
    weight = weight / weight.mean()
    weight[weight > 10] = weight.mean()
    weight = weight / weight.mean()
    np.testing.assert_allclose(out[0].ravel(), 2.0 * weight, rtol=1e-12)
    assert out.mean() == pytest.approx(2.0)
    # a residual of the other sign zeroes the spline's part: the spread is uniform
    flat = distribute_residual(tps_change, homogeneity, np.array([[-2.0]]), cell, cell == 0, 10.0)
    np.testing.assert_allclose(flat, -2.0)


def test_heterogeneity_counts_the_same_class_in_truncated_windows() -> None:
    classes = np.array([[1, 1, 2], [1, 2, 2], [0, 2, 2]])
    het = heterogeneity(classes, 1)
    assert het[0, 0] == pytest.approx(3 / 4)  # corner window 2 x 2
    assert het[1, 1] == pytest.approx(5 / 9)
    assert het[2, 0] == pytest.approx(1 / 4)  # class 0 counts as a class


def test_fallbacks_outside_the_data_range() -> None:
    params = FsdafParams(dn_min=0.0, dn_max=100.0)
    fine = np.array([[[10.0, 50.0, 90.0, 40.0]]])
    change = np.zeros_like(fine)
    coarse_change = np.array([[[-30.0, 5.0, 20.0, 7.0]]])
    prediction = np.array([[[-1.0, 60.0, 101.0, np.nan]]])
    out = finish(prediction, fine, change, coarse_change, params)
    # below 0: F1 + dC clipped (-20 -> 0); above 100: 90 + 20 clipped; no candidate: F1 + change
    np.testing.assert_array_equal(out, [[[0.0, 60.0, 100.0, 40.0]]])
    truncated = finish(prediction + 0.7, fine, change, coarse_change, FsdafParams(truncate=True))
    assert truncated[0, 0, 1] == 60.0


def test_block_layout_is_the_programs() -> None:
    blocks = block_layout((50, 70), FsdafParams(scale_factor=4, block_size=5))
    assert len(blocks) == 3 * 4
    assert blocks[1].core == (0, 20, 20, 40) and blocks[1].ext == (0, 24, 16, 44)
    assert blocks[-1].core == (40, 50, 60, 70) and blocks[-1].ext == (36, 50, 56, 70)


def test_local_spline_equals_the_exact_one_when_its_window_covers_the_grid() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0, 10, (2, 5, 6))
    ratio = 4
    local = tps_local(values, ratio, radius=6).transpose(0, 1, 3, 2, 4).reshape(2, 20, 24)
    rows, cols = np.indices((5, 6)).reshape(2, -1)
    centres = np.stack([rows, cols], axis=1).astype(float)
    fy, fx = np.indices((20, 24)).reshape(2, -1)
    points = np.stack([(fy + 0.5) / ratio - 0.5, (fx + 0.5) / ratio - 0.5], axis=1)
    exact = tps_exact(values.reshape(2, -1), centres, points).reshape(2, 20, 24)
    np.testing.assert_allclose(local, exact, atol=1e-9)
    holes = values.copy()
    holes[:, 2, 2] = np.nan
    assert np.isfinite(tps_local(holes, ratio, radius=1)).all()


def test_isodata_separates_clusters_deterministically() -> None:
    rng = np.random.default_rng(2)
    means = np.array([[500.0, 800.0], [2000.0, 3000.0], [4000.0, 1000.0]])
    truth = rng.integers(0, 3, (40, 50))
    fine = np.moveaxis(means[truth], -1, 0) + rng.normal(0, 30, (2, 40, 50))
    params = FsdafParams(min_classes=2, max_classes=4, min_pixels=20)
    classes, centres = isodata_classes(fine, params)
    again, _ = isodata_classes(fine, params)
    np.testing.assert_array_equal(classes, again)
    assert len(centres) == 3
    # one class per cluster
    assert all(len(np.unique(classes[truth == k])) == 1 for k in range(3))


def _toy_scene(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    classes = (np.indices((48, 48)).sum(axis=0) // 9) % 3 + 1
    base = np.array([[800.0, 1500.0, 2500.0], [1200.0, 1800.0, 3500.0], [600.0, 900.0, 1200.0]])
    fine = np.moveaxis(base[classes - 1], -1, 0) + rng.integers(-40, 40, (3, 48, 48))
    change = np.array([[50.0, -80.0, 30.0], [100.0, 20.0, -200.0], [-30.0, 60.0, 90.0]])
    truth = fine + np.moveaxis(change[classes - 1], -1, 0)
    coarse = fine.reshape(3, 6, 8, 6, 8).mean(axis=(2, 4))
    coarse_pred = truth.reshape(3, 6, 8, 6, 8).mean(axis=(2, 4))
    return fine, coarse, coarse_pred, classes


@pytest.mark.parametrize("mode", ["program", "seamless"])
def test_numba_matches_the_numpy_reference(mode: str) -> None:
    fine, coarse, coarse_pred, classes = _toy_scene(3)
    params = FsdafParams(window_radius=3, n_similar=6, scale_factor=8, block_size=3, tps_radius=2)
    if mode == "program":

        def run(engine: str) -> np.ndarray:
            up = (np.kron(c, np.ones((1, 8, 8))) for c in (coarse, coarse_pred))
            return fsdaf_program(fine, *up, params, classes=classes, engine=engine)
    else:

        def run(engine: str) -> np.ndarray:
            return fsdaf(fine, coarse, coarse_pred, 8, params, classes=classes, engine=engine)

    np.testing.assert_allclose(run("numba"), run("reference"), rtol=1e-12)


def test_seamless_recovers_a_pure_class_change_and_skips_nodata() -> None:
    fine, coarse, coarse_pred, classes = _toy_scene(4)
    params = FsdafParams(window_radius=3, n_similar=6, scale_factor=8, tps_radius=2)
    out = fsdaf(fine, coarse, coarse_pred, 8, params, classes=classes)
    truth = fine + (coarse_pred - coarse).mean()  # only a rough sanity scale
    assert np.isfinite(out).all() and np.abs(out - truth).mean() < 200
    holes = fine.copy()
    holes[:, 10:14, 20:30] = np.nan
    gap = fsdaf(holes, coarse, coarse_pred, 8, params, classes=classes)
    assert np.isnan(gap[:, 10:14, 20:30]).all() and np.isfinite(gap[:, 30:]).all()


@pytest.mark.shared
def test_oracle_fsdaf_lgc_sim(shared_dir: Path) -> None:
    import tifffile

    data = shared_dir / "data" / "fsdaf_lgc_sim"
    fine, truth = _read(data, "Landsat20041126"), _read(data, "Landsat20041228")
    coarse, coarse_pred = _read(data, "MODIS20041126"), _read(data, "MODIS20041228")
    classes = _read(data, "Landsat20041126_SVM_classification", "u1", 1)
    oracle = tifffile.imread(shared_dir / ORACLE_RUN / "prediction.tif").astype(np.float64)
    params = FsdafParams(truncate=True)
    prediction = fsdaf_program(fine, coarse, coarse_pred, params, classes=classes, engine="numba")
    diff = np.abs(prediction - oracle)
    assert ((diff <= 1).mean(axis=(1, 2)) >= 0.99).all()
    assert ((diff == 0).mean(axis=(1, 2)) >= 0.99).all() and diff.max() <= 1
    rmse = np.sqrt(((prediction - truth) ** 2).mean(axis=(1, 2)))
    np.testing.assert_allclose(rmse, ORACLE_RMSE, rtol=0.01)


def test_exact_spline_equals_scipy_thin_plate_rbf() -> None:
    from scipy.interpolate import RBFInterpolator

    rng = np.random.default_rng(5)
    centres = np.stack(np.indices((12, 10)).reshape(2, -1), axis=1) * 16.0 + 7.5
    values = rng.normal(2000, 500, (3, len(centres)))
    points = rng.uniform(0, 190, (500, 2))
    scipy_tps = RBFInterpolator(centres, values.T, kernel="thin_plate_spline")(points).T
    np.testing.assert_allclose(tps_exact(values, centres, points), scipy_tps, atol=1e-9 * 2000)
