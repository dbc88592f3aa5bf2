"""GAN-STFM's networks (issue 17): published sizes, the receptive field of the ``frozen`` mode,
the whole-window dependence of the ``window`` mode, feathered windows."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from stfcube.kernels.learned import (  # noqa: E402
    GANSTFM,
    FeatureUNet,
    MSDiscriminator,
    Pair,
    WindowGrid,
    fuse_windows,
    predict,
)
from stfcube.kernels.learned.ganstfm import HALO, window_starts  # noqa: E402

TINY = (4, 4, 8, 8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_networks_have_the_published_sizes() -> None:
    """Parameter counts derived in research/learned_stf.md for 6 bands."""
    assert _params(GANSTFM(6)) == 578_130
    assert _params(MSDiscriminator(6)) == 3_665_959
    assert _params(FeatureUNet(6)) == 217_990


def _trained_statistics(model: GANSTFM) -> GANSTFM:
    """A generator whose normalisation statistics were updated by a few training passes."""
    torch.manual_seed(0)
    for _ in range(3):
        model(torch.rand(2, 2, 32, 32), torch.rand(2, 2, 32, 32) + 0.2)
    return model.eval()


def test_frozen_mode_depends_on_the_halo_only_and_window_mode_on_the_whole_input() -> None:
    model = _trained_statistics(GANSTFM(2, TINY))
    coarse, fine = torch.rand(1, 2, 48, 48), torch.rand(1, 2, 48, 48)
    far = fine.clone()
    far[..., 30:] += 0.5  # farther than the halo from columns < 30 - HALO
    keep = 30 - HALO
    with torch.no_grad():
        model.set_statistics("frozen")
        a, b = model(coarse, fine), model(coarse, far)
        torch.testing.assert_close(a[..., :keep], b[..., :keep], rtol=0, atol=1e-6)
        model.set_statistics("window")
        a, b = model(coarse, fine), model(coarse, far)
    assert (a[..., :keep] - b[..., :keep]).abs().max() > 1e-4


def test_window_starts_cover_the_axis_and_end_at_the_edge() -> None:
    assert window_starts(100, 128, 32) == [0]
    assert window_starts(300, 128, 32) == [0, 96, 172]
    assert window_starts(256, 128, 0) == [0, 128]


def test_one_window_over_the_image_is_the_plain_network() -> None:
    model = _trained_statistics(GANSTFM(2, TINY))
    coarse, fine = torch.rand(2, 2, 40, 40), torch.rand(2, 2, 40, 40)
    valid = torch.ones(2, 40, 40, dtype=torch.bool)
    region = (slice(0, 40), slice(0, 40))
    with torch.no_grad():
        plain = predict(model, [Pair(fine, valid, coarse, valid)], coarse, valid)
        windows = WindowGrid((0, 0), (40, 40), region, window=64, overlap=16)
        windowed = fuse_windows(model, coarse, fine, windows)
    torch.testing.assert_close(windowed, plain, rtol=0, atol=1e-6)


def test_a_region_of_a_block_equals_the_same_pixels_of_the_whole_image() -> None:
    """The window grid is fixed to the image: a block holding every window that meets the
    region gives the whole image's values there."""
    model = _trained_statistics(GANSTFM(2, TINY))
    coarse, fine = torch.rand(1, 2, 80, 90), torch.rand(1, 2, 80, 90)
    with torch.no_grad():
        whole = fuse_windows(
            model, coarse, fine, WindowGrid((0, 0), (80, 90), (slice(0, 80), slice(0, 90)), 32, 8)
        )
        block = (..., slice(10, 80), slice(20, 90))  # image rows 10-79, columns 20-89
        grid = WindowGrid((10, 20), (80, 90), (slice(30, 40), slice(25, 45)), 32, 8)
        part = fuse_windows(model, coarse[block], fine[block], grid)
    torch.testing.assert_close(part, whole[..., 40:50, 45:65], rtol=0, atol=1e-6)
