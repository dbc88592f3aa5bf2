"""STARFM kernel: hand-checked values, tiled == whole image, numba == NumPy reference, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stfcube.kernels import starfm
from stfcube.kernels.starfm import (
    StarfmParams,
    StarfmResult,
    slice_moments,
    slice_thresholds,
    slices_from_moments,
    starfm_tile,
)

# ----------------------------------------------------------------------------- hand-checked case


def _hand_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """7x7, one pair, one date; window 4 (max_search_distance 60 m / 30 m), offsets -2..1, A = 2.

    Fine L: 1000 in columns 0-3, 2000 in columns 4-6. Coarse M = L + 10 except M(2,3) = L + 97
    and M(5,5) = L + 200. Prediction-date coarse Mk = M + 100 except Mk(3,1) = M + 260 and
    Mk(5,5) = M + 500.
    """
    fine = np.full((7, 7), 1000, dtype=np.int16)
    fine[:, 4:] = 2000
    coarse = fine + 10
    coarse[2, 3] = fine[2, 3] + 97
    coarse[5, 5] = fine[5, 5] + 200
    coarse_pred = coarse + 100
    coarse_pred[3, 1] = coarse[3, 1] + 260
    coarse_pred[5, 5] = coarse[5, 5] + 500
    return fine[None], coarse[None], coarse_pred[None]


def test_hand_checked_values() -> None:
    fine, coarse, coarse_pred = _hand_case()
    params = StarfmParams(max_search_distance=60)
    assert (params.window, params.offsets, params.halo, params.distance_scale) == (4, (-2, 1), 2, 2)
    # mean = (28*1000 + 21*2000)/49 = 1428.57; sd = sqrt(112e6/49 - 1428.57²) = 494.87 -> 494;
    # slice = int(494*2/40 + 0.5) = int(25.2) = 25: similar <=> same half of the image.
    assert slice_thresholds(fine, params=params).tolist() == [25]

    result = starfm(fine, coarse, coarse_pred, max_search_distance=60)
    pred, quality = result.prediction[0], result.quality[0]

    # Centre (3,2): window rows 1..4, cols 0..3, all 1000 -> 16 candidates. Centre minima:
    # |M-L| = 10 -> threshold 10+70 = 80; |M-Mk| = 100 -> threshold 100+70 = 170.
    # * (3,1): |M-L| = 10 <= 80 keeps it although |M-Mk| = 260 > 170 (OR acceptance);
    #   T = 10+1 = 11 < 98 -> weight 1; term L + Mk - M = 1000 + 260 = 1260.
    # * (2,3): |M-L| = 97 > 80 but |M-Mk| = 100 <= 170 -> kept; T = 98, not < 98, so
    #   weight = 1/(98*(1 + sqrt(2)/2)) = 0.0059774; term 1000 + 100 = 1100.
    # * 14 others: weight 1, term 1100.
    # fsr = 1100 + 160/(15 + 0.0059774) = 1110.662 -> trunc(1110.662 + 0.5) = 1111.
    # (Weight 1 for (2,3) would give 1100 + 160/16 = 1110.)
    assert pred[3, 2] == 1111
    assert quality[3, 2] == 16

    # Centre (5,5): rows 3..6 x cols 4..6 similar (col 3 is 1000) -> 12 candidates. Minima from
    # the centre itself: |M-L| = 200 -> 270, |M-Mk| = 500 -> 570, so all are kept. Centre:
    # T = 201 -> weight 1/201 at d = 0, term 2000 + 500 = 2500; 11 others weight 1, term 2100.
    # fsr = 2100 + (400/201)/(11 + 1/201) = 2100.18 -> 2100.
    assert pred[5, 5] == 2100
    assert quality[5, 5] == 12

    # Centre (5,4): rows 3..6 x cols 4..5 -> 8 similar; (5,5) has |M-L| = 200 > 80 AND
    # |M-Mk| = 500 > 170 -> dropped: 7 candidates, all 2100.
    assert pred[5, 4] == 2100
    assert quality[5, 4] == 7

    # Corner (0,0): rows -2..1 and cols -2..1, only rows 0..1 x cols 0..1 inside -> 4 candidates.
    assert pred[0, 0] == 1100
    assert quality[0, 0] == 4


def test_paper_mode_and_filter_drops_one_sided_candidate() -> None:
    fine, coarse, coarse_pred = _hand_case()
    # AND filter: (3,1) fails the temporal test (260 > 170) and is dropped in paper mode.
    usda = starfm(fine, coarse, coarse_pred, max_search_distance=60)
    paper = starfm(fine, coarse, coarse_pred, max_search_distance=60, mode="paper")
    assert StarfmParams(max_search_distance=60, mode="paper").offsets == (-2, 2)
    assert usda.quality[0, 3, 2] == 16
    assert paper.quality[0, 3, 2] == 25 - 5 - 1 - 1  # 5x5 window minus column 4, (2,3), (3,1)
    assert paper.prediction[0, 3, 2] == pytest.approx(1100.0, abs=1e-3)


def test_result_unpacks_and_is_frozen() -> None:
    fine, coarse, coarse_pred = _hand_case()
    result = starfm(fine, coarse, coarse_pred, max_search_distance=60)
    prediction, quality = result
    assert isinstance(result, StarfmResult)
    assert prediction.dtype == np.float32 and quality.dtype == np.uint16
    assert prediction.shape == quality.shape == (1, 7, 7)
    with pytest.raises(AttributeError):
        result.prediction = prediction  # type: ignore[misc]


# ----------------------------------------------------------------------------- random scenes


def _scene(
    seed: int, pairs: int, dates: int, shape: tuple[int, int] = (30, 28), fill_holes: bool = False
) -> dict[str, np.ndarray]:
    """Patchy int16 scene with real similar-pixel structure and a few fill values."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    base = rng.integers(500, 4000, size=(rows // 4 + 2, cols // 4 + 2))
    patches = np.kron(base, np.ones((4, 4), dtype=np.int64))[:rows, :cols]
    fine = patches[None] + rng.integers(-30, 30, size=(pairs, rows, cols))
    coarse = fine + rng.integers(-150, 150, size=(pairs, rows, cols))
    coarse_pred = coarse[:1] + rng.integers(-300, 300, size=(dates, rows, cols))
    if fill_holes:
        fine[0, 3:6, 4:9] = -9999
        coarse_pred[-1, 10:14, 2:5] = -9999
    return {
        "fine": fine.astype(np.int16),
        "coarse": coarse.astype(np.int16),
        "coarse_pred": coarse_pred.astype(np.int16),
    }


def _assert_same(a: StarfmResult, b: StarfmResult) -> None:
    np.testing.assert_array_equal(a.prediction, b.prediction)  # NaN == NaN here
    np.testing.assert_array_equal(a.quality, b.quality)


_CASES = {
    "usda-1pair": dict(pairs=1, dates=1),
    "usda-2pairs-3dates-fill": dict(pairs=2, dates=3, fill_holes=True),
    "usda-masks": dict(pairs=2, dates=2, masks=True),
    "usda-classes": dict(pairs=2, dates=1, classes=True),
    "usda-centre-only": dict(pairs=2, dates=2, use_spatial=False),
    "paper-1pair": dict(pairs=1, dates=2, mode="paper"),
    "paper-2pairs-masks-classes": dict(pairs=2, dates=2, mode="paper", masks=True, classes=True),
    "usda-float-nan": dict(pairs=2, dates=2, as_float=True),
}


@pytest.mark.parametrize("case", list(_CASES))
def test_numba_matches_reference(case: str) -> None:
    spec = dict(_CASES[case])
    seed = sorted(_CASES).index(case)
    scene = _scene(seed, spec.pop("pairs"), spec.pop("dates"), fill_holes=spec.pop("fill_holes", 0))
    rng = np.random.default_rng(100 + seed)
    kwargs: dict = {"max_search_distance": 120.0, "mode": spec.pop("mode", "usda")}
    kwargs["use_spatial"] = spec.pop("use_spatial", True)
    shape = scene["fine"].shape
    if spec.pop("masks", False):
        kwargs["fine_valid"] = rng.random(shape) > 0.1
        kwargs["coarse_valid"] = rng.random(shape[1:]) > 0.1
        kwargs["coarse_pred_valid"] = rng.random(scene["coarse_pred"].shape) > 0.1
    if spec.pop("classes", False):
        kwargs["class_map"] = (scene["fine"][0] // 700).astype(np.int32)
    if spec.pop("as_float", False):
        for name in scene:
            data = scene[name].astype(np.float32)
            data[rng.random(data.shape) < 0.05] = np.nan
            scene[name] = data
    assert not spec
    numba_result = starfm(**scene, **kwargs, engine="numba")
    reference = starfm(**scene, **kwargs, engine="reference")
    _assert_same(numba_result, reference)
    filled = np.isnan(numba_result.prediction)
    assert 0 < (~filled).sum(), "the scene must produce predictions"
    assert np.all((numba_result.quality == 0) == filled)


def test_centre_only_uses_each_pairs_centre() -> None:
    scene = _scene(5, pairs=1, dates=1)
    result = starfm(**scene, use_spatial=False)
    fine, coarse, pred = (scene[n][0].astype(np.float64) for n in ("fine", "coarse", "coarse_pred"))
    expected = np.trunc(fine + pred - coarse + 0.5)
    np.testing.assert_array_equal(result.prediction[0], expected)
    assert set(np.unique(result.quality)) == {1}


# ----------------------------------------------------------------------------- tiling


def _extend(array: np.ndarray | None, rows: slice, cols: slice, halo: int, fill) -> np.ndarray:
    """Rows/cols of ``array`` plus ``halo`` on each side, ``fill`` outside the image."""
    if array is None:
        return None
    padded = np.pad(array, [(0, 0)] * (array.ndim - 2) + [(halo, halo)] * 2, constant_values=fill)
    return padded[..., rows.start : rows.stop + 2 * halo, cols.start : cols.stop + 2 * halo]


@pytest.mark.parametrize("tile", [3, 7, 11, 23])
def test_tiled_equals_whole_image(tile: int) -> None:
    scene = _scene(11, pairs=2, dates=2, shape=(33, 29), fill_holes=True)
    rng = np.random.default_rng(7)
    fine_valid = rng.random(scene["fine"].shape) > 0.05
    kwargs = dict(max_search_distance=150.0, fine_valid=fine_valid)
    whole = starfm(**scene, **kwargs)
    params = StarfmParams(max_search_distance=150.0)
    assert params.halo == 5 and tile < 2 * params.halo + 14
    slices = slice_thresholds(scene["fine"], fine_valid, params=params)
    halo = params.halo
    floats = {name: scene[name].astype(np.float32) for name in scene}
    prediction = np.full(whole.prediction.shape, -1.0, dtype=np.float32)
    quality = np.zeros(whole.quality.shape, dtype=np.uint16)
    rows_total, cols_total = scene["fine"].shape[1:]
    for r0 in range(0, rows_total, tile):
        for c0 in range(0, cols_total, tile):
            rows = slice(r0, min(r0 + tile, rows_total))
            cols = slice(c0, min(c0 + tile, cols_total))
            part = starfm_tile(
                *(_extend(floats[n], rows, cols, halo, np.nan) for n in floats),
                slices=slices,
                params=params,
                fine_valid=_extend(fine_valid, rows, cols, halo, False),
                halo=halo,
            )
            prediction[:, rows, cols] = part.prediction
            quality[:, rows, cols] = part.quality
    np.testing.assert_array_equal(prediction, whole.prediction)
    np.testing.assert_array_equal(quality, whole.quality)


def test_tile_with_larger_halo_than_needed() -> None:
    scene = _scene(3, pairs=1, dates=1)
    params = StarfmParams(max_search_distance=120.0)
    whole = starfm(**scene, max_search_distance=120.0)
    slices = slice_thresholds(scene["fine"], params=params)
    halo = params.halo + 3
    floats = [
        np.pad(
            scene[n].astype(np.float32),
            ((0, 0), (halo, halo), (halo, halo)),
            constant_values=np.nan,
        )
        for n in ("fine", "coarse", "coarse_pred")
    ]
    result = starfm_tile(*floats, slices=slices, params=params, halo=halo)
    _assert_same(result, whole)


# ----------------------------------------------------------------------------- statistics


def test_slice_moments_reduce_over_chunks() -> None:
    scene = _scene(2, pairs=2, dates=1, fill_holes=True)
    params = StarfmParams()
    fine = scene["fine"]
    parts = [
        slice_moments(fine[:, r : r + 7, c : c + 9], params=params)
        for r in range(0, fine.shape[1], 7)
        for c in range(0, fine.shape[2], 9)
    ]
    summed = [sum(p[i] for p in reversed(parts)) for i in range(3)]
    np.testing.assert_array_equal(
        slices_from_moments(*summed, params=params), slice_thresholds(fine, params=params)
    )
    count, total, total_sq = slice_moments(fine, params=params)
    kept = fine[0][(fine[0] > -100) & (fine[0] < 10000)].astype(np.float64)
    assert count[0] == kept.size and total[0] == kept.sum() and total_sq[0] == (kept**2).sum()
    sd = math.sqrt(total_sq[0] / count[0] - (total[0] / count[0]) ** 2)
    assert slice_thresholds(fine, params=params)[0] == int(int(sd) * 2 / 40 + 0.5)


def test_slices_of_empty_pair_and_paper_mode() -> None:
    params = StarfmParams(mode="paper")
    slices = slices_from_moments([0.0, 4.0], [0.0, 20.0], [0.0, 116.0], params=params)
    # second pair: mean 5, variance 116/4 - 25 = 4, sd 2 -> 2*2/40
    assert slices.tolist() == [0.0, pytest.approx(0.1)]
    assert slices_from_moments([4.0], [20.0], [116.0], params=StarfmParams()).tolist() == [0]


# ----------------------------------------------------------------------------- parameters


def test_params_geometry() -> None:
    usda = StarfmParams()
    assert (usda.window, usda.offsets, usda.halo, usda.distance_scale) == (50, (-25, 24), 25, 25.0)
    assert usda.uncertainties == (70, 70, 98)
    paper = StarfmParams(mode="paper", max_search_distance=450)
    assert (paper.window, paper.offsets, paper.halo) == (31, (-15, 15), 15)
    assert paper.uncertainties[2] == pytest.approx(100.0)
    centre = StarfmParams(use_spatial=False)
    assert (centre.offsets, centre.halo) == ((0, 0), 0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"resolution": 0}, "resolution must be a positive"),
        ({"max_search_distance": float("nan")}, "max_search_distance must be a positive"),
        ({"max_search_distance": 10}, "empty window"),
        ({"num_slice_pure_test": 0}, "num_slice_pure_test"),
        ({"num_slice_pure_test": 2.5}, "num_slice_pure_test"),
        ({"fine_uncertainty": -1}, "fine_uncertainty"),
        ({"data_range": (5, 5)}, "data_range"),
        ({"data_range": (0,)}, "data_range"),
        ({"fill_value": float("inf")}, "fill_value"),
        ({"mode": "fast"}, "mode must be one of"),
        ({"use_spatial": "yes"}, "use_spatial"),
    ],
)
def test_bad_parameters(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StarfmParams(**overrides)


# ----------------------------------------------------------------------------- bad input


def _small() -> dict[str, np.ndarray]:
    return _scene(1, pairs=1, dates=1, shape=(12, 12))


def test_bad_inputs() -> None:
    scene = _small()
    fine, coarse, pred = scene["fine"], scene["coarse"], scene["coarse_pred"]
    kw = {"max_search_distance": 90.0}
    with pytest.raises(ValueError, match=r"coarse must have the shape of fine"):
        starfm(fine, coarse[:, :-1], pred, **kw)
    with pytest.raises(ValueError, match=r"coarse_pred must cover the grid"):
        starfm(fine, coarse, pred[:, :, :-1], **kw)
    with pytest.raises(ValueError, match=r"fine has no pairs"):
        starfm(fine[:0], coarse[:0], pred, **kw)
    with pytest.raises(ValueError, match=r"coarse_pred has no dates"):
        starfm(fine, coarse, pred[:0], **kw)
    with pytest.raises(ValueError, match=r"fine must be a 3-D array"):
        starfm(fine[0], coarse, pred, **kw)
    with pytest.raises(ValueError, match=r"larger than the image"):
        starfm(fine, coarse, pred, max_search_distance=750.0)
    bad = fine.astype(np.float32)
    bad[0, 2, 2] = np.inf
    with pytest.raises(ValueError, match=r"fine contains infinite values"):
        starfm(bad, coarse, pred, **kw)
    with pytest.raises(ValueError, match=r"must hold real numbers"):
        starfm(fine.astype(bool), coarse, pred, **kw)
    with pytest.raises(ValueError, match=r"fine_valid must have shape"):
        starfm(fine, coarse, pred, fine_valid=np.ones((3, 12, 12), bool), **kw)
    with pytest.raises(ValueError, match=r"class_map must hold integer"):
        starfm(fine, coarse, pred, class_map=np.zeros((12, 12), np.float32), **kw)
    with pytest.raises(ValueError, match=r"engine must be one of"):
        starfm(fine, coarse, pred, engine="fortran", **kw)


def test_nan_is_invalid_not_an_error() -> None:
    scene = _small()
    fine = scene["fine"].astype(np.float32)
    fine[0, 5, 5] = np.nan
    result = starfm(fine, scene["coarse"], scene["coarse_pred"], max_search_distance=90.0)
    assert np.isnan(result.prediction[0, 5, 5]) and result.quality[0, 5, 5] == 0
    assert np.isfinite(result.prediction[0, 5, 6])


def test_bad_tile_arguments() -> None:
    scene = _small()
    params = StarfmParams(max_search_distance=90.0)
    args = (scene["fine"], scene["coarse"], scene["coarse_pred"])
    with pytest.raises(ValueError, match=r"halo must be an integer >= params.halo = 3"):
        starfm_tile(*args, slices=[10], params=params, halo=2)
    with pytest.raises(ValueError, match=r"needs more than 24 rows"):
        starfm_tile(*args, slices=[10], params=params, halo=12)
    with pytest.raises(ValueError, match=r"one value per pair"):
        starfm_tile(*args, slices=[10, 3], params=params, halo=3)
    with pytest.raises(ValueError, match=r"finite and >= 0"):
        starfm_tile(*args, slices=[-1], params=params, halo=3)


def test_mixed_host_and_device_arrays_are_rejected() -> None:
    from stfcube.kernels._backend import array_module

    class FakeCupyArray:  # dispatch goes by the defining module, like cupy.ndarray
        __module__ = "cupy._core.core"
        ndim = 3

    with pytest.raises(TypeError, match="mix NumPy"):
        array_module(np.zeros(3), FakeCupyArray(), None)
    assert array_module(np.zeros(3), None, 1.0) is np


@pytest.mark.parametrize(
    ("max_search_distance", "mode", "span", "pairs"),
    [
        (960.0, "usda", 64, 2),
        (960.0, "paper", 65, 2),
        (1050.0, "usda", 70, 2),
        (1950.0, "usda", 130, 1),
    ],
)
def test_numba_matches_reference_on_windows_of_several_row_chunks(
    max_search_distance: float, mode: str, span: int, pairs: int
) -> None:
    """The CPU search compares window rows 64 cells at a time: exact multiples and tails (the
    widest window with one pair and date: the NumPy reference is slow there)."""
    params = StarfmParams(max_search_distance=max_search_distance, mode=mode)
    lo, hi = params.offsets
    assert hi - lo + 1 == span
    scene = _scene(7, pairs, pairs, shape=(span + 12, span + 9), fill_holes=True)
    kwargs = dict(max_search_distance=max_search_distance, mode=mode)
    numba_result = starfm(**scene, **kwargs, engine="numba")
    _assert_same(numba_result, starfm(**scene, **kwargs, engine="reference"))
    assert np.isfinite(numba_result.prediction).mean() > 0.5


@pytest.mark.parametrize(("pairs", "mode"), [(2, "usda"), (1, "usda"), (2, "paper")])
def test_multi_date_equals_date_by_date(pairs: int, mode: str) -> None:
    """The numba kernel weighs a pair group's dates together (sums of 4 dates side by side):
    6 dates at once (one full group and one padded) == each date alone, bit for bit."""
    scene = _scene(21, pairs, 6, fill_holes=True)
    kwargs = dict(max_search_distance=120.0, mode=mode, engine="numba")
    together = starfm(**scene, **kwargs)
    for k in range(6):
        alone = starfm(scene["fine"], scene["coarse"], scene["coarse_pred"][k : k + 1], **kwargs)
        np.testing.assert_array_equal(together.prediction[k : k + 1], alone.prediction)
        np.testing.assert_array_equal(together.quality[k : k + 1], alone.quality)
    assert np.isfinite(together.prediction).mean() > 0.5
