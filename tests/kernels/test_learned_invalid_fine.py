"""Learned predictions from a pair whose invalid fine pixels hold NaN (a cloud-masked image):
finite gradients for DCSTFN and STFDCNN (their per-pixel pair weights used the raw fine image,
so one NaN pixel turned every weight's gradient into NaN and DCSTFN training diverged)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from stfcube.kernels.learned import Pair, build_model, predict  # noqa: E402

RATIO = 4


@pytest.mark.parametrize("name", ["dcstfn", "stfdcnn"])
@pytest.mark.parametrize("n_pairs", [1, 2])
def test_gradients_are_finite_with_nan_under_the_fine_mask(name: str, n_pairs: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, 2, RATIO)
    size = 32 // RATIO if name == "dcstfn" else 32
    pairs = []
    for _ in range(n_pairs):
        fine, fine_valid = torch.rand(1, 2, 32, 32), torch.ones(1, 32, 32, dtype=torch.bool)
        fine[..., 4:12, 4:12], fine_valid[..., 4:12, 4:12] = torch.nan, False
        pairs.append(Pair(fine, fine_valid, torch.rand(1, 2, size, size),
                          torch.ones(1, size, size, dtype=torch.bool)))  # fmt: skip
    coarse_pred = torch.rand(1, 2, size, size)
    out = predict(model, pairs, coarse_pred, torch.ones(1, size, size, dtype=torch.bool))
    torch.nan_to_num(out).square().mean().backward()
    assert out[..., 20:, 20:].isfinite().all()
    assert all(p.grad is None or p.grad.isfinite().all() for p in model.parameters())
