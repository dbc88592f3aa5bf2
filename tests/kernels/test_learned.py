"""Learned-fusion kernels (issue 16): MS-SSIM variants, EDCSTFN's two-pair merge, halos."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from stfcube.kernels.learned import EDCSTFN, Pair, build_model, model_halo, ms_ssim, predict  # noqa: E402
from stfcube.kernels.learned.losses import MS_SSIM_WEIGHTS, _ssim_cs  # noqa: E402


def test_ms_ssim_standard_and_authors_products() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    y = 0.8 * x + 0.1 * torch.rand(2, 3, 64, 64)
    assert float(ms_ssim(x, x)) == pytest.approx(1.0)
    css, a, b = [], x, y
    for _ in MS_SSIM_WEIGHTS:
        ssim, cs = _ssim_cs(a, b, 1.0)
        css.append((cs + 1) / 2)
        a, b = (
            torch.nn.functional.avg_pool2d(a, 2, ceil_mode=True),
            torch.nn.functional.avg_pool2d(b, 2, ceil_mode=True),
        )
    w, last = MS_SSIM_WEIGHTS, (ssim + 1) / 2
    standard = last ** w[-1] * torch.prod(
        torch.stack([c**wi for c, wi in zip(css[:-1], w[:-1], strict=True)])
    )
    authors = torch.prod(
        torch.stack([c**wi * last ** w[-1] for c, wi in zip(css[:-1], w[:-1], strict=True)])
    )
    assert float(ms_ssim(x, y)) == pytest.approx(float(standard), rel=1e-5)
    assert float(ms_ssim(x, y, variant="authors")) == pytest.approx(float(authors), rel=1e-5)
    assert float(ms_ssim(x, y, variant="authors")) < float(ms_ssim(x, y))


def test_edcstfn_two_identical_pairs_equal_one_pair() -> None:
    torch.manual_seed(1)
    model = EDCSTFN(2).eval()
    fine, coarse = torch.rand(1, 2, 24, 24), torch.rand(1, 2, 24, 24)
    valid = torch.ones(1, 24, 24, dtype=torch.bool)
    pair = Pair(fine, valid, coarse, valid)
    with torch.no_grad():
        one = predict(model, [pair], coarse + 0.05, valid)
        two = predict(model, [pair, pair], coarse + 0.05, valid)
    torch.testing.assert_close(one, two, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["edcstfn", "stfdcnn", "dcstfn"])
def test_output_beyond_the_halo_is_independent_of_the_input(name: str) -> None:
    """Changing inputs farther than the halo from a pixel leaves that pixel unchanged."""
    torch.manual_seed(2)
    ratio, size = 8, 128
    model = build_model(name, 1, ratio).eval()
    halo = model_halo(name, ratio)
    fine = torch.rand(1, 1, size, size)
    side = size // ratio if name == "dcstfn" else size
    coarse = torch.rand(1, 1, side, side)
    valid, cvalid = (
        torch.ones(1, size, size, dtype=torch.bool),
        torch.ones(1, side, side, dtype=torch.bool),
    )
    with torch.no_grad():
        base = predict(model, [Pair(fine, valid, coarse, cvalid)], coarse + 0.1, cvalid)
        far = fine.clone()
        far[..., :, size - (size - halo) // 2 :] = 0.0  # beyond the halo of column 0's pixels
        changed = predict(model, [Pair(far, valid, coarse, cvalid)], coarse + 0.1, cvalid)
    keep = max(0, size - (size - halo) // 2 - halo - (ratio if name == "dcstfn" else 0))
    torch.testing.assert_close(changed[..., :keep], base[..., :keep], rtol=0, atol=1e-6)
