"""Metric kernels against hand-computed values and scikit-image / scipy references."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from stfcube.kernels import metrics as km

# Hand case: x = fused, y = truth, four pixels.
X = np.array([1.0, 2.0, 3.0, 4.0])
Y = np.array([1.0, 3.0, 2.0, 6.0])
# d = x - y = (0, -1, 1, -2): Σd² = 6, Σ|d| = 4, Σd = -2; ȳ = 3, Σ(y-ȳ)² = 4+0+1+9 = 14
# x̄ = 2.5, Σ(x-x̄)² = 5, Σ(x-x̄)(y-ȳ) = 3+0-0.5+4.5 = 7 → r = 7/sqrt(70)
HAND = {
    "rmse": np.sqrt(6 / 4),
    "mae": 1.0,
    "bias": -0.5,
    "r": 7 / np.sqrt(70),
    "r2": 1 - 6 / 14,
    "psnr": 10 * np.log10(10.0**2 / 1.5),
    "uiqi": 4 * (7 / 4) * 2.5 * 3 / ((5 / 4 + 14 / 4) * (2.5**2 + 3**2)),
}


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    truth = rng.random((3, 64, 72))
    fused = truth + 0.05 * rng.standard_normal(truth.shape) + 0.01
    return fused, truth


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_computed_values(name: str) -> None:
    func = getattr(km, "pearson_r" if name == "r" else name)
    args = (X, Y, 10.0) if name == "psnr" else (X, Y)
    assert func(*args) == pytest.approx(HAND[name], rel=1e-12)


def test_library_references(images: tuple[np.ndarray, np.ndarray]) -> None:
    fused, truth = images[0][0], images[1][0]
    assert km.pearson_r(fused, truth) == pytest.approx(pearsonr(fused.ravel(), truth.ravel())[0])
    assert km.psnr(fused, truth, 1.0) == pytest.approx(
        peak_signal_noise_ratio(truth, fused, data_range=1.0), rel=1e-12
    )
    assert km.rmse(fused, truth) == pytest.approx(np.sqrt(np.mean((fused - truth) ** 2)))
    ss_res, ss_tot = np.sum((truth - fused) ** 2), np.sum((truth - truth.mean()) ** 2)
    assert km.r2(fused, truth) == pytest.approx(1 - ss_res / ss_tot)


@pytest.mark.parametrize("data_range", [1.0, 2.5])
def test_ssim_equals_scikit_image_on_unmasked_images(
    images: tuple[np.ndarray, np.ndarray], data_range: float
) -> None:
    fused, truth = images[0][1], images[1][1]
    expected = structural_similarity(fused, truth, data_range=data_range)
    assert km.ssim(fused, truth, data_range=data_range) == pytest.approx(expected, rel=1e-12)
    _, smap = structural_similarity(fused, truth, data_range=data_range, full=True)
    ours = km.ssim_map(fused, truth, data_range=data_range)
    r = km.ssim_radius()
    np.testing.assert_allclose(ours[r:-r, r:-r], smap[r:-r, r:-r], rtol=1e-10)
    assert np.isnan(ours[:r]).all() and np.isnan(ours[:, -r:]).all()


def test_ssim_identical_images_is_one(images: tuple[np.ndarray, np.ndarray]) -> None:
    truth = images[1][0]
    assert km.ssim(truth, truth, data_range=1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("chunks", [(5, 7), (16, 20), (64, 72)])
def test_tiled_ssim_equals_whole_image(
    images: tuple[np.ndarray, np.ndarray], chunks: tuple[int, int]
) -> None:
    fused, truth = images[0][2], images[1][2]
    valid = np.ones(truth.shape, dtype=bool)
    valid[10:14, 30:50] = False
    r = km.ssim_radius()

    def block(f: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        return km.ssim_map(f, t, v, data_range=1.0)

    tiled = da.map_overlap(
        block,
        *(da.from_array(a, chunks=chunks) for a in (fused, truth, valid)),
        depth=r,
        boundary=0,
        dtype=np.float64,
    ).compute()
    whole = km.ssim_map(fused, truth, valid, data_range=1.0)
    np.testing.assert_array_equal(np.isnan(tiled), np.isnan(whole))
    np.testing.assert_allclose(tiled, whole, rtol=1e-10, equal_nan=True)


def test_ssim_excludes_windows_touching_masked_pixels() -> None:
    rng = np.random.default_rng(5)
    truth = rng.random((30, 30))
    fused = truth.copy()
    fused[15, 15] = 1e6  # a wild value, but masked
    valid = np.ones(truth.shape, dtype=bool)
    valid[15, 15] = False
    smap = km.ssim_map(fused, truth, valid, data_range=1.0)
    assert np.isnan(smap[12:19, 12:19]).all()
    assert np.isfinite(smap[11, 15]) and np.isfinite(smap[3:27, 3:11]).all()
    assert km.ssim(fused, truth, valid, data_range=1.0) == pytest.approx(1.0)
    assert np.isnan(km.ssim(fused, truth, np.zeros_like(valid), data_range=1.0))


def test_masks_and_nans_never_enter_a_metric() -> None:
    fused = np.array([1.0, 2.0, np.nan, 4.0, 100.0])
    truth = np.array([1.0, 3.0, 5.0, np.inf, 2.0])
    valid = np.array([True, True, True, True, False])
    # only pixels 0 and 1 are usable: d = (0, -1)
    assert km.rmse(fused, truth, valid) == pytest.approx(np.sqrt(0.5))
    assert km.bias(fused, truth, valid) == pytest.approx(-0.5)
    assert km.pair_moments(fused, truth, valid)[0] == 2


def test_no_valid_pixel_gives_nan_not_an_error() -> None:
    m = km.pair_moments(X, Y, np.zeros(4, dtype=bool))
    assert m[0] == 0
    for func in (
        km.rmse_from_moments,
        km.mae_from_moments,
        km.bias_from_moments,
        km.pearson_r_from_moments,
        km.r2_from_moments,
        km.uiqi_from_moments,
    ):
        assert np.isnan(func(m))
    assert np.isnan(km.psnr_from_moments(m, 1.0))


def test_sam_hand_case() -> None:
    fused = np.array([[1.0, 1.0], [0.0, 2.0]])  # two pixels: (1, 0), (1, 2)
    truth = np.array([[0.0, 2.0], [1.0, 4.0]])  # (0, 1), (2, 4)
    assert km.sam(fused, truth) == pytest.approx(45.0)  # mean of 90° and 0°
    assert km.sam(fused, truth, np.array([False, True])) == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(km.sam(fused, truth, np.array([False, False])))


def test_ergas_hand_case() -> None:
    # band RMSEs 1 and 2, truth means 10 and 40: sqrt(mean(0.01, 0.0025)) = sqrt(0.00625)
    truth = np.stack([np.full(4, 10.0), np.full(4, 40.0)])
    fused = truth + np.array([[1.0], [2.0]])
    expected = 100 * (30 / 480) * np.sqrt((0.1**2 + 0.05**2) / 2)
    assert km.ergas(fused, truth, 30 / 480) == pytest.approx(expected)
    with pytest.raises(ValueError, match="positive"):
        km.ergas(fused, truth, 0.0)


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        km.rmse(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="odd"):
        km.ssim_radius(6)
    with pytest.raises(ValueError, match="data_range"):
        km.ssim_map(np.ones((9, 9)), np.ones((9, 9)), data_range=0.0)
    with pytest.raises(ValueError, match="last"):
        km.reduce_moments(np.zeros((3, km.N_MOMENTS)), axis=-1)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    cuts=st.lists(st.integers(1, 199), min_size=0, max_size=6, unique=True),
    masked=st.floats(0.0, 0.9),
)
def test_merged_moments_equal_whole_moments(seed: int, cuts: list[int], masked: float) -> None:
    rng = np.random.default_rng(seed)
    truth = 5000 + rng.random(200)  # large mean, small variance: cancellation-prone
    fused = truth + 0.1 * rng.standard_normal(200)
    valid = rng.random(200) >= masked
    pieces = np.split(np.arange(200), sorted(cuts))
    parts = np.stack([km.pair_moments(fused[p], truth[p], valid[p]) for p in pieces])
    merged = km.reduce_moments(parts, axis=0)
    whole = km.pair_moments(fused, truth, valid)
    np.testing.assert_allclose(merged, whole, rtol=1e-9, atol=1e-9)
    if whole[0] > 2:
        assert km.pearson_r_from_moments(merged) == pytest.approx(
            np.corrcoef(fused[valid], truth[valid])[0, 1], rel=1e-9
        )


def test_reduce_moments_over_several_axes() -> None:
    rng = np.random.default_rng(1)
    stack = np.stack(
        [[km.pair_moments(rng.random(10), rng.random(10)) for _ in range(3)] for _ in range(4)]
    )
    two_step = km.reduce_moments(km.reduce_moments(stack, axis=1), axis=0)
    np.testing.assert_allclose(km.reduce_moments(stack, axis=(0, 1)), two_step, rtol=1e-12)
