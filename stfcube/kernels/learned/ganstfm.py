"""GAN-STFM's generator (Tan et al. 2022, ``SFFusion``) with switchable normalisation, and its
two inference modes for tiles.

Built from the description in ``research/learned_stf.md`` section 3 (the authors' code has no
licence; nothing of it is copied). The generator maps the coarse image of the prediction date
``C(tp)`` (resampled to the fine grid) and one fine reference ``F(ref)`` of any date to
``F(tp)``, at full fine resolution throughout: four two-stream encoder blocks (a lateral coarse
stream without normalisation, a trunk stream with switchable normalisation, the lateral output
added to the trunk's), the two streams concatenated, four residual decoder blocks and a 1x1
output. 3x3 convolutions use replication padding, activations are LeakyReLU (slope 0.01); with
the published widths (16, 32, 64, 128) and 6 bands it has 578 130 parameters.

Switchable normalisation (Luo et al. 2019) mixes instance, layer and batch statistics with
softmax weights. The original inference (``statistics="window"``) takes the instance and layer
statistics from the image it is given, so the output depends on the whole window's content: no
finite halo makes tiles equal the whole image. :func:`fuse_windows` therefore runs the generator
on large overlapping windows laid on a grid fixed to the image (not to the engine's tiles) and
feathers them together: the result is the same for any tiling whose halo covers a window, and
the remaining seams lie between windows, softened by the blending. ``statistics="frozen"``
replaces every layer's mixed statistics by their running average over training (batch-norm
style): each normalisation is then a fixed per-channel affine map and the network's receptive
field, :data:`HALO` fine pixels, is exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

#: Channel widths of the encoder blocks (the decoder mirrors them).
WIDTHS = (16, 32, 64, 128)
#: Receptive-field radius in fine pixels: one 3x3 convolution per encoder and decoder block.
HALO = 8
#: The two inference modes of the switchable normalisation.
Statistics = Literal["frozen", "window"]
STATISTICS = ("frozen", "window")


def _conv3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="replicate")


class SwitchNorm2d(nn.Module):
    """Switchable normalisation of ``(N, C, y, x)`` tensors.

    Mean and variance are softmax-weighted sums of the instance ``(N, C)``, layer ``(N)`` and
    batch ``(C)`` statistics, followed by a per-channel affine map. In training the batch
    statistics come from the batch and their running averages are kept (``momentum`` is the
    share of the old value); the mixed statistics' batch means are averaged the same way into
    ``frozen_mean`` / ``frozen_var``. In evaluation the batch part uses the running averages and
    the instance and layer parts come from the input (``statistics="window"``), or the frozen
    averages replace the mixture altogether (``statistics="frozen"``).
    """

    def __init__(self, channels: int, momentum: float = 0.9, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.statistics: Statistics = "window"
        self.weight = nn.Parameter(torch.ones(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))
        self.mean_weight = nn.Parameter(torch.ones(3))
        self.var_weight = nn.Parameter(torch.ones(3))
        self.running_mean: torch.Tensor
        self.running_var: torch.Tensor
        self.frozen_mean: torch.Tensor
        self.frozen_var: torch.Tensor
        for name in ("running", "frozen"):
            self.register_buffer(f"{name}_mean", torch.zeros(1, channels, 1))
            self.register_buffer(f"{name}_var", torch.ones(1, channels, 1))

    def _average(self, name: str, value: torch.Tensor) -> None:
        buffer = getattr(self, name)
        buffer.mul_(self.momentum).add_((1 - self.momentum) * value.detach())

    def _mixed(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixed mean and variance ``(N, C, 1)`` of ``flat`` ``(N, C, pixels)``."""
        mean_in = flat.mean(-1, keepdim=True)
        square_in = flat.var(-1, keepdim=True, unbiased=False) + mean_in**2
        mean_ln = mean_in.mean(1, keepdim=True)
        var_ln = square_in.mean(1, keepdim=True) - mean_ln**2
        if self.training:
            mean_bn = mean_in.mean(0, keepdim=True)
            var_bn = square_in.mean(0, keepdim=True) - mean_bn**2
            self._average("running_mean", mean_bn)
            self._average("running_var", var_bn)
        else:
            mean_bn, var_bn = self.running_mean, self.running_var
        wm, wv = self.mean_weight.softmax(0), self.var_weight.softmax(0)
        mean = wm[0] * mean_in + wm[1] * mean_ln + wm[2] * mean_bn
        var = wv[0] * (square_in - mean_in**2) + wv[1] * var_ln + wv[2] * var_bn
        return mean, var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised ``x``."""
        flat = x.flatten(2)
        if not self.training and self.statistics == "frozen":
            mean, var = self.frozen_mean, self.frozen_var
        else:
            mean, var = self._mixed(flat)
            if self.training:
                self._average("frozen_mean", mean.mean(0, keepdim=True))
                self._average("frozen_var", var.mean(0, keepdim=True))
        out = (flat - mean) / torch.sqrt(var.clamp_min(0) + self.eps)
        return (out * self.weight + self.bias).view_as(x)


class TwoStreamBlock(nn.Module):
    """Encoder block: lateral (coarse) stream without normalisation, trunk stream with
    switchable normalisation; returns ``(lateral', trunk' + lateral')``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = min(c_in, c_out)
        self.lateral = nn.Sequential(_conv3(c_in, mid), nn.Conv2d(mid, c_out, 1), nn.LeakyReLU())
        self.trunk = nn.Sequential(
            SwitchNorm2d(c_in), nn.LeakyReLU(), _conv3(c_in, mid),
            SwitchNorm2d(mid), nn.LeakyReLU(), nn.Conv2d(mid, c_out, 1),
        )  # fmt: skip

    def forward(
        self, streams: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The next (lateral, trunk) pair."""
        lateral = self.lateral(streams[0])
        return lateral, self.trunk(streams[1]) + lateral


class ResidualBlock(nn.Module):
    """Decoder block: conv3x3, LeakyReLU, conv1x1, plus a 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = min(c_in, c_out)
        self.body = nn.Sequential(_conv3(c_in, mid), nn.LeakyReLU(), nn.Conv2d(mid, c_out, 1))
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output."""
        return self.body(x) + self.shortcut(x)


class GANSTFM(nn.Module):
    """GAN-STFM's generator: ``F(tp)`` from ``C(tp)`` and one fine reference of any date.

    Parameters
    ----------
    bands
        Bands of both inputs and of the output.
    widths
        Encoder widths (the published ones by default; smaller ones for quick tests).
    """

    def __init__(self, bands: int, widths: Sequence[int] = WIDTHS) -> None:
        super().__init__()
        channels = (bands, *widths)
        self.encoder = nn.ModuleList(TwoStreamBlock(a, b) for a, b in itertools.pairwise(channels))
        back = (2 * widths[-1], *reversed(widths))
        self.decoder = nn.Sequential(
            *(ResidualBlock(a, b) for a, b in itertools.pairwise(back)),
            nn.Conv2d(widths[0], bands, 1),
        )

    @staticmethod
    def halo(ratio: int = 1) -> int:
        """Receptive-field radius in fine pixels (exact in the ``frozen`` mode only)."""
        return HALO

    def set_statistics(self, statistics: Statistics) -> None:
        """Choose the normalisation statistics used in evaluation (see the module doc)."""
        if statistics not in STATISTICS:
            raise ValueError(f"statistics must be one of {', '.join(STATISTICS)}")
        for module in self.modules():
            if isinstance(module, SwitchNorm2d):
                module.statistics = statistics

    def forward(self, coarse_pred: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """``F(tp)`` from ``C(tp)`` (fine grid) and the reference fine image."""
        streams = (coarse_pred, fine)
        for block in self.encoder:
            streams = block(streams)
        return self.decoder(torch.cat(streams, dim=1))


def window_starts(size: int, window: int, overlap: int) -> list[int]:
    """Starts of the windows along an axis of ``size`` pixels: every ``window - overlap``
    pixels from 0, the last one moved back to end at the image edge (one window of the whole
    axis when it is shorter than ``window``)."""
    if size <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, size - window, stride))
    return [*starts, size - window]


def _ramp(length: int, overlap: int, start: int, size: int) -> torch.Tensor:
    """Feathering weights along one axis of a window: rising linearly over ``overlap`` pixels
    from each side that is not the image edge, 1 elsewhere."""
    position = torch.arange(length, dtype=torch.float64) + 0.5
    ramp = torch.ones(length, dtype=torch.float64)
    if overlap > 0:
        if start > 0:
            ramp = torch.minimum(ramp, position / overlap)
        if start + length < size:
            ramp = torch.minimum(ramp, (length - position) / overlap)
    return ramp


@dataclass(frozen=True)
class WindowGrid:
    """Where a block lies in its image, which of its pixels to predict, and the window grid.

    Attributes
    ----------
    origin
        Image row and column of the block's top-left pixel.
    image_shape
        Rows and columns of the whole image (the grid's extent).
    region
        Rows and columns of the block to predict.
    window, overlap
        Window edge and the overlap of neighbouring windows (the feathering width), pixels.
    """

    origin: tuple[int, int]
    image_shape: tuple[int, int]
    region: tuple[slice, slice]
    window: int = 256
    overlap: int = 64


def fuse_windows(
    model: GANSTFM, coarse_pred: torch.Tensor, fine: torch.Tensor, grid: WindowGrid
) -> torch.Tensor:
    """The ``window`` mode's prediction on ``grid.region`` of a block: the generator run on
    every window of the image's grid that meets the region, feathered together.

    Parameters
    ----------
    model
        The generator (evaluation mode, ``window`` statistics).
    coarse_pred, fine
        ``(N, B, y, x)`` inputs (filled: finite everywhere) of the block; it must hold every
        window that meets the region (a halo of ``grid.window`` pixels around it is enough).
    grid
        The block's place and the window grid.

    Returns
    -------
    torch.Tensor
        ``(N, B, rows, cols)`` of the region.
    """
    (r0, c0), (rows, cols), region = grid.origin, grid.image_shape, grid.region
    top, left = r0 + region[0].start, c0 + region[1].start
    bottom, right = r0 + region[0].stop, c0 + region[1].stop
    n, bands = coarse_pred.shape[:2]
    total = coarse_pred.new_zeros((n, bands, bottom - top, right - left), dtype=torch.float64)
    weights = total.new_zeros((bottom - top, right - left))
    h, w = min(grid.window, rows), min(grid.window, cols)
    for i in (i for i in window_starts(rows, grid.window, grid.overlap) if top - h < i < bottom):
        for j in (
            j for j in window_starts(cols, grid.window, grid.overlap) if left - w < j < right
        ):
            cut = (..., slice(i - r0, i - r0 + h), slice(j - c0, j - c0 + w))
            out = model(coarse_pred[cut], fine[cut]).double()
            ramp = _ramp(h, grid.overlap, i, rows)[:, None] * _ramp(w, grid.overlap, j, cols)[None]
            ramp = ramp.to(total.device)
            y0, y1 = max(i, top), min(i + h, bottom)
            x0, x1 = max(j, left), min(j + w, right)
            inner = (slice(y0 - i, y1 - i), slice(x0 - j, x1 - j))
            place = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
            total[(..., *place)] += out[(..., *inner)] * ramp[inner]
            weights[place] += ramp[inner]
    return (total / weights).to(coarse_pred.dtype)
