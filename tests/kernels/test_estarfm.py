"""ESTARFM kernel (issue 13): Zhu's IDL program, checked against its GDL run on kranj_ts
(acceptance 1), quirk by quirk on tiny arrays (acceptance 2), numba == NumPy reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from stfcube.kernels.estarfm import (
    EstarfmParams,
    _formulas,
    _ref,
    estarfm,
    estarfm_tile,
    seamless_thresholds,
)
from stfcube.kernels.estarfm._prepare import (
    FEW_CANDIDATES,
    FITTED_V,
    NO_PREDICTION,
    OUT_OF_RANGE,
    UNIT_V,
    f_critical,
)
from stfcube.kernels.estarfm.statistics import block_thresholds

ORACLE_RUN = "oracle/estarfm_idl/kranj_ts_p068_093_to_077"
ENGINES = ["numba", "reference"]


def scene(seed: int, shape: tuple[int, ...] = (2, 3, 24, 26)) -> tuple[np.ndarray, ...]:
    """Patchy fine pairs, coarse = fine + noise, two prediction dates."""
    rng = np.random.default_rng(seed)
    patches = np.kron(rng.normal(3000, 600, (*shape[:2], 4, 4)), np.ones((1, 1, 7, 7)))
    fine = patches[..., : shape[2], : shape[3]] + rng.normal(0, 80, shape)
    coarse = fine + rng.normal(0, 150, shape)
    pred = np.stack([coarse[0] * 1.15 + 40, coarse[1] * 0.9]) + rng.normal(0, 30, (2, *shape[1:]))
    return fine, coarse, pred


def test_params_validate() -> None:
    assert EstarfmParams().span == 51 and EstarfmParams().min_change == 200.0
    with pytest.raises(ValueError, match="mode must be one of"):
        EstarfmParams(mode="fast")
    with pytest.raises(ValueError, match="half_window must be an integer >= 1"):
        EstarfmParams(half_window=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="DN_min < DN_max"):
        EstarfmParams(data_range=(10.0, 0.0))
    with pytest.raises(ValueError, match="fine must be a"):
        estarfm(np.ones((3, 1, 4, 4)), np.ones((2, 1, 4, 4)), np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="thresholds must have shape"):
        estarfm_tile(np.ones((2, 1, 4, 4)), np.ones((2, 1, 4, 4)), np.ones((1, 1, 4, 4)), [1.0])


@pytest.mark.parametrize("mode", ["seamless", "reference"])
def test_numba_matches_the_numpy_reference(mode: str) -> None:
    fine, coarse, pred = scene(1)
    fine[1, :, 3:5, 20:22] = np.nan  # a gap in a pair image
    pred_valid = np.ones((2, 24, 26), dtype=bool)
    pred_valid[1, 10:14, 5:9] = False  # C0 gap on one date: other candidates that date only
    params = EstarfmParams(half_window=4, num_class=6.0, block_size=13, mode=mode)
    kwargs = {"coarse_pred_valid": pred_valid}
    ref = estarfm(fine, coarse, pred, params, engine="reference", **kwargs)
    fast = estarfm(fine, coarse, pred, params, engine="numba", **kwargs)
    np.testing.assert_allclose(fast.prediction, ref.prediction, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(fast.code, ref.code)
    np.testing.assert_array_equal(fast.count, ref.count)
    codes = np.bincount(ref.code.ravel(), minlength=5)
    assert codes[[NO_PREDICTION, FITTED_V, UNIT_V, FEW_CANDIDATES]].min() > 0
    assert np.isnan(ref.prediction[:, :, 3:5, 20:22]).all()


def test_seamless_tile_with_halo_equals_whole_image() -> None:
    fine, coarse, pred = scene(2)
    params = EstarfmParams(half_window=3, num_class=2.0)
    whole = estarfm(fine, coarse, pred, params)
    limits = seamless_thresholds(fine, params)
    rows, cols = slice(10 - 3, 18 + 3), slice(0, 9 + 3)  # tile (10:18, 0:9) plus its halo
    tile = estarfm_tile(
        fine[..., rows, cols], coarse[..., rows, cols], pred[..., rows, cols], limits, params,
        window=(3, 11, 0, 9),
    )  # fmt: skip
    np.testing.assert_array_equal(tile.prediction, whole.prediction[..., 10:18, 0:9])


def test_reference_blocks_are_computed_alone() -> None:
    """The program's blocks: each block's output is the kernel's on that block alone (its own
    thresholds, windows stopping at its borders), hence seams at block borders."""
    fine, coarse, pred = scene(3)
    params = EstarfmParams(half_window=4, num_class=2.0, block_size=12, mode="reference")
    whole = estarfm(fine, coarse, pred, params).prediction
    block = (..., slice(12, 24), slice(0, 12))
    alone = estarfm(fine[block], coarse[block], pred[block], params).prediction
    np.testing.assert_array_equal(whole[block], alone)
    seamless = estarfm(fine, coarse, pred, EstarfmParams(half_window=4, num_class=2.0))
    assert not np.allclose(whole[..., 11:13, :], seamless.prediction[..., 11:13, :])


def test_reference_thresholds_include_background_values() -> None:
    fine = np.arange(2 * 16, dtype=float).reshape(2, 1, 4, 4)
    fine[0, 0, 0, 0] = -9999.0
    sd = np.std(fine.reshape(2, -1), axis=1, ddof=1)
    np.testing.assert_allclose(block_thresholds(fine, 4.0)[:, 0], 2 * sd / 4.0)
    seamless = seamless_thresholds(fine, EstarfmParams(num_class=4.0))
    np.testing.assert_allclose(seamless[0, 0], 2 * np.std(fine[0, 0].ravel()[1:], ddof=1) / 4)


@pytest.mark.parametrize("engine", ENGINES)
def test_similarity_is_strict_and_background_is_excluded(engine: str) -> None:
    fine = np.full((2, 1, 1, 9), 500.0)
    fine[0, 0, 0] = [500, 510, 490, 509.9, 500, 500, 500, 500, 500]
    coarse = np.full(fine.shape, 520.0)
    pred = np.full((1, 1, 1, 9), 530.0)
    pred[0, 0, 0, 8] = -9999.0  # background in C0: no prediction, no candidate
    result = estarfm_tile(fine, coarse, pred, [[10.0], [10.0]], EstarfmParams(4), engine=engine)
    # centre 4: cells 0..8 minus 510 and 490 (|diff| = 10 is not < 10) minus the background
    assert result.count[0, 0, 4] == 6
    assert result.code[0, 0, 0, 8] == NO_PREDICTION and np.isnan(result.prediction[0, 0, 0, 8])


@pytest.mark.parametrize("engine", ENGINES)
def test_few_candidates_fallback_uses_window_mean_changes(engine: str) -> None:
    """5 similar pixels: ``T1 (F1(c) + d1) + T2 (F2(c) + d2)`` with the signed window-mean
    changes ``d_k = mean(C0) - mean(Ck)`` over all valid window pixels."""
    rng = np.random.default_rng(4)
    fine = rng.normal(1000, 300, (2, 1, 1, 11))
    fine[:, 0, 0, 3:8] = [[600, 601, 602, 603, 604], [700, 701, 702, 703, 704]]
    coarse = rng.normal(1000, 100, fine.shape)
    pred = rng.normal(1000, 100, (1, 1, 1, 11))
    result = estarfm_tile(fine, coarse, pred, [[5.0], [5.0]], EstarfmParams(5), engine=engine)
    assert result.count[0, 0, 5] == 5 and result.code[0, 0, 0, 5] == FEW_CANDIDATES
    d = [pred[0, 0, 0].mean() - coarse[k, 0, 0].mean() + 1e-10 for k in range(2)]
    t = [1 / abs(d[0]) / (1 / abs(d[0]) + 1 / abs(d[1])), 1 / abs(d[1])]
    t[1] = t[1] / (1 / abs(d[0]) + 1 / abs(d[1]))
    expected = t[0] * (602 + d[0]) + t[1] * (702 + d[1])
    assert result.prediction[0, 0, 0, 5] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_out_of_range_prediction_falls_back_to_the_base_images(engine: str) -> None:
    fine = np.stack([np.full((1, 4, 4), 900.0), np.full((1, 4, 4), 950.0)])
    coarse = fine.copy()
    pred = np.full((1, 1, 4, 4), 1300.0)  # +400 and +350: beyond DN_max = 1000
    params = EstarfmParams(3, data_range=(0.0, 1000.0))
    result = estarfm_tile(fine, coarse, pred, [[1.0], [1.0]], params, engine=engine)
    t1 = (1 / 400) / (1 / 400 + 1 / 350)
    assert (result.code == OUT_OF_RANGE).all()
    np.testing.assert_allclose(result.prediction, t1 * 900 + (1 - t1) * 950, rtol=1e-9)


def test_conversion_coefficient_rules() -> None:
    rng = np.random.default_rng(5)
    coarse = np.stack([rng.normal(1000, 50, 30), rng.normal(1400, 50, 30)])
    for slope, kept in ((1.7, True), (6.0, False), (-0.8, False)):
        fine = slope * coarse + rng.normal(0, 5, coarse.shape)
        v = _ref.conversion_coefficient(fine, coarse, 200.0)
        fitted = np.polyfit(coarse.ravel(), fine.ravel(), 1)[0]
        assert v == pytest.approx(fitted, rel=1e-9) if kept else np.isnan(v)
    # the candidates' mean coarse change must reach 2 % of DN_max (here 200)
    assert np.isnan(_ref.conversion_coefficient(2 * coarse, coarse - [[0], [220]], 250.0))
    noise = rng.normal(0, 1, coarse.shape)  # no relation: not significant
    assert np.isnan(_ref.conversion_coefficient(noise, coarse, 200.0))


@pytest.mark.parametrize("m", [10, 58, 400])
def test_f_test_boundary(m: int) -> None:
    """``sig = 1 - F_cdf(F; 1, m) <= 0.05`` exactly from the table's critical value on."""
    crit = f_critical(15)[m]
    assert 1.0 - special.fdtr(1.0, m, crit) == pytest.approx(0.05, abs=1e-12)

    def v_for(f_value: float) -> float:
        r2 = f_value / (f_value + m)  # F = r2 / (1 - r2) * m, slope sxy / sxx = sqrt(r2)
        return _formulas.conversion_coefficient(1.0, math.sqrt(r2), 1.0, m + 2, crit)

    assert v_for(crit * (1 + 1e-9)) == pytest.approx(math.sqrt(crit / (crit + m)))
    assert math.isnan(v_for(crit * (1 - 1e-9)))
    assert 1.0 - special.fdtr(1.0, m, crit * (1 - 1e-9)) > 0.05


def test_correlation_nan_becomes_one_half() -> None:
    fine = np.full((2, 2, 1), 7.0)  # constant fine vector: Pearson r is NaN
    coarse = np.array([[[1.0], [2.0]], [[3.0], [4.0]]])
    with np.errstate(invalid="ignore", divide="ignore"):
        assert _ref.correlation(fine, coarse)[0] == 0.5
    assert _formulas.correlation(fine[..., None], coarse[..., None], 0, 0) == 0.5
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(2, 2, 3, 1))
    pearson = np.corrcoef(x.ravel(), y.ravel())[0, 1]
    assert _ref.correlation(x, y)[0] == pytest.approx(pearson, rel=1e-12)
    assert _formulas.correlation(x[..., None], y[..., None], 0, 0) == pytest.approx(pearson)
    one_band = _ref.correlation(np.array([[[3.0]], [[5.0]]]), np.array([[[1.0]], [[5.0]]]))
    assert one_band[0] == pytest.approx(1 - 0.5 * (0.5 + 0.0))


def _read(path: Path, scale: float = 1.0) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return (src.read().astype(np.float32) * np.float32(scale)).astype(np.float64)


@pytest.mark.shared
def test_oracle_kranj_ts(shared_dir: Path) -> None:
    """Reference mode vs the IDL program (float run): every pixel within 0.5 (acceptance),
    at least 99 % within 0.01. Measured: max 0.0139, 99.96 % within 0.01."""
    import tifffile

    data = shared_dir / "data" / "kranj_ts"
    landsat = data / "landsat_filled"
    fine = np.stack(
        [
            _read(landsat / "2020068_191-28.tif_filled_kranj.tif"),
            _read(landsat / "2020093_190-28.tif_filled_kranj.tif"),
        ]
    )
    modis = [
        _read(data / "modis_filled" / f"2020{d:03d}_18-04_kranj.tif", 1e4) for d in (68, 93, 77)
    ]
    oracle = tifffile.imread(shared_dir / ORACLE_RUN / "prediction.tif").astype(np.float64)
    params = EstarfmParams(mode="reference")
    result = estarfm(fine, np.stack(modis[:2]), modis[2], params)
    diff = np.abs(result.prediction - oracle)
    assert diff.max() < 0.5
    assert (diff <= 0.01).mean() >= 0.99
    assert (diff.reshape(6, -1) <= 1.0).all()
    reference = estarfm(fine, np.stack(modis[:2]), modis[2], params, engine="reference")
    np.testing.assert_allclose(reference.prediction, result.prediction, rtol=1e-12)
