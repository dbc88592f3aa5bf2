"""The CNN fusion models as ``torch.nn.Module``s, built from the published descriptions.

Every model takes scaled reflectance (``x 1e-4``) tensors ``(N, band, y, x)`` and returns the
prediction ``F(tp)`` of the same layout. Layer lists, widths and padding follow
``research/learned_stf.md``; each model states its exact receptive-field radius
(:meth:`halo`), which the engine uses as the tile halo.

* :class:`EDCSTFN` (Tan et al. 2019), fine-grid variant: coarse images resampled to the fine grid
  outside the network (the authors' internal ``align_corners`` upsampling is not
  shift-equivariant). Replication padding, five 3x3 layers per path: radius 5 fine px.
* :class:`DCSTFN` (Tan et al. 2018), PyTorch-branch variant (ReLU after the transposed
  convolutions), all bands as channels of one model (the authors train one model per band):
  coarse images on their native grid, upsampled inside by ``log2(ratio) - 1`` stride-2 transposed
  convolutions; zero padding. Its output is shift-equivariant for shifts of whole coarse pixels,
  so tiles are computed on windows aligned to the coarse grid (:func:`dcstfn_context`).
* :class:`STFDCNN` (Song et al. 2018), "STFDCNN-like": two SRCNN blocks (9-5-5, widths 64 and
  32, global residual, zero padding) on the fine grid, a non-linear mapping coarse -> transition
  image and a super-resolution transition -> fine image; pairs add their fine detail
  (:func:`stfcube.kernels.learned.api.predict`). Radius 16 fine px.
* :class:`~stfcube.kernels.learned.ganstfm.GANSTFM` (Tan et al. 2022), the generator of the
  conditional GAN, in its own module with its discriminator and losses beside it
  (:mod:`stfcube.kernels.learned.adversarial`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from stfcube.kernels.learned.ganstfm import GANSTFM
from stfcube.kernels.learned.ganstfm import WIDTHS as WIDTHS_GANSTFM

#: Padding of the 3x3 convolutions (zeros or replication).
Padding = Literal["zeros", "replicate"]

#: Channel widths of the DCSTFN and EDCSTFN encoders.
WIDTHS = (32, 64, 128)


def _conv(c_in: int, c_out: int, padding: Padding = "zeros") -> nn.Conv2d:
    """3x3 convolution keeping the size (zero or replication padding)."""
    return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode=padding)


def _stack(channels: tuple[int, ...], padding: Padding, last_relu: bool = True) -> nn.Sequential:
    """3x3 convolutions between consecutive ``channels``, each followed by ReLU."""
    layers: list[nn.Module] = []
    for k, (c_in, c_out) in enumerate(itertools.pairwise(channels)):
        layers.append(_conv(c_in, c_out, padding))
        if last_relu or k < len(channels) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class EDCSTFN(nn.Module):
    """Enhanced DCSTFN: fine encoder + temporal-change encoder, summed, decoded.

    Parameters
    ----------
    bands
        Bands of every input and of the output.
    """

    def __init__(self, bands: int) -> None:
        super().__init__()
        pad: Padding = "replicate"
        self.fine_encoder = _stack((bands, *WIDTHS), pad)
        self.change_encoder = _stack((3 * bands, *WIDTHS), pad, last_relu=False)
        self.decoder = nn.Sequential(
            _conv(128, 64, pad), nn.ReLU(), _conv(64, 32, pad), nn.ReLU(), nn.Conv2d(32, bands, 1)
        )

    @staticmethod
    def halo(ratio: int = 1) -> int:
        """Receptive-field radius in fine pixels: five 3x3 layers on every path."""
        return 5

    def encode(
        self, fine: torch.Tensor, coarse: torch.Tensor, coarse_pred: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fine features and the (signed) temporal-change features of one pair."""
        change = self.change_encoder(torch.cat([coarse, fine, coarse_pred], dim=1))
        return self.fine_encoder(fine), change

    def forward(
        self, fine: torch.Tensor, coarse: torch.Tensor, coarse_pred: torch.Tensor
    ) -> torch.Tensor:
        """F(tp) from one pair (fine, coarse) and the coarse image of the prediction date."""
        features, change = self.encode(fine, coarse, coarse_pred)
        return self.decoder(features + change)

    def forward_two(
        self,
        pair1: tuple[torch.Tensor, torch.Tensor],
        pair2: tuple[torch.Tensor, torch.Tensor],
        coarse_pred: torch.Tensor,
    ) -> torch.Tensor:
        """F(tp) from two pairs: features merged per pixel and channel with weights inverse to
        the absolute change features (w1 = (1/|d1|) / (1/|d1| + 1/|d2|), clamped to [0, 1])."""
        f1, d1 = self.encode(*pair1, coarse_pred)
        f2, d2 = self.encode(*pair2, coarse_pred)
        inv1, inv2 = 1.0 / (d1.abs() + 1e-8), 1.0 / (d2.abs() + 1e-8)
        w1 = (inv1 / (inv1 + inv2)).clamp(0.0, 1.0)
        return self.decoder(w1 * (f1 + d1) + (1.0 - w1) * (f2 + d2))


def _upsampling_steps(ratio: int) -> int:
    """Stride-2 transposed convolutions of DCSTFN's coarse path (to half the fine grid)."""
    steps = round(math.log2(ratio)) if ratio >= 2 else -1
    if steps < 1 or 2**steps != ratio:
        raise ValueError(f"DCSTFN needs a coarse/fine ratio that is a power of 2 >= 2, got {ratio}")
    return steps - 1


def _transposed(channels: int, out: int | None = None) -> nn.ConvTranspose2d:
    """3x3 stride-2 transposed convolution doubling the size."""
    return nn.ConvTranspose2d(channels, out or channels, 3, 2, padding=1, output_padding=1)


class DCSTFN(nn.Module):
    """DCSTFN: shared coarse sub-network (native grid), fine sub-network, feature-space
    ``fine(t1) - coarse(t1) + coarse(tp)``, transposed-conv reconstruction.

    Parameters
    ----------
    bands
        Bands of every input and of the output.
    ratio
        Fine pixels per coarse pixel (a power of 2 >= 2; 16 in the paper).
    """

    def __init__(self, bands: int, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio
        up: list[nn.Module] = []
        for _ in range(_upsampling_steps(ratio)):
            up += [_transposed(64), nn.ReLU()]
        self.coarse_net = nn.Sequential(
            _stack((bands, 32, 64), "zeros"), *up, _conv(64, 128), nn.ReLU()
        )
        self.fine_net = nn.Sequential(
            _stack((bands, 32, 64), "zeros"), nn.MaxPool2d(2), _stack((64, 64, 128), "zeros")
        )
        self.reconstruct = nn.Sequential(
            _transposed(128, 64),
            nn.ReLU(),
            nn.Conv2d(64, 32, 1),
            nn.ReLU(),
            nn.Conv2d(32, bands, 1),
        )

    @staticmethod
    def context(ratio: int) -> int:
        """Coarse pixels of context on each side of an output's coarse pixel.

        Distances between pixel centres, in fine pixels, summed over the coarse path: two 3x3
        convolutions on the coarse grid (``ratio`` each), each stride-2 transposed convolution
        at most 3/4 of its input spacing, the 3x3 convolution at half the fine grid (2) and the
        reconstruction's transposed convolution (1.5). A coarse pixel ``m`` pixels away has its
        centre at least ``(m - 1/2) * ratio`` from any fine pixel of the output's coarse pixel.
        """
        reach = 2 * ratio + sum(0.75 * ratio / 2**k for k in range(_upsampling_steps(ratio)))
        reach += 2 + 1.5
        return math.floor(reach / ratio + 0.5)

    @classmethod
    def halo(cls, ratio: int) -> int:
        """Fine pixels of context a tile needs so that a window aligned to the coarse grid
        holds :meth:`context` whole coarse pixels on each side (one more for the alignment)."""
        return (cls.context(ratio) + 1) * ratio

    def forward(
        self, fine: torch.Tensor, coarse: torch.Tensor, coarse_pred: torch.Tensor
    ) -> torch.Tensor:
        """F(tp) from the fine image ``(N, B, r h, r w)`` and the native coarse images
        ``(N, B, h, w)`` of the pair and prediction dates."""
        if fine.shape[-2:] != (coarse.shape[-2] * self.ratio, coarse.shape[-1] * self.ratio):
            raise ValueError(
                f"fine {tuple(fine.shape)} must be {self.ratio} x the coarse {tuple(coarse.shape)}"
            )
        both = self.coarse_net(torch.cat([coarse, coarse_pred]))
        c1, c2 = both.chunk(2)
        return self.reconstruct(self.fine_net(fine) - c1 + c2)


class SRCNN(nn.Module):
    """SRCNN block with a global residual: 9x9 (64) -> 5x5 (32) -> 5x5 (bands), plus input."""

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(bands, 64, 9, padding=4),
            nn.ReLU(),
            nn.Conv2d(64, 32, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(32, bands, 5, padding=2),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The input plus the predicted residual image."""
        return image + self.body(image)


class STFDCNN(nn.Module):
    """STFDCNN-like two-stage CNN: ``mapping`` (coarse -> transition image) then
    ``super_resolution`` (transition -> fine), both on the fine grid.

    Parameters
    ----------
    bands
        Bands of every input and of the output.
    """

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.mapping = SRCNN(bands)
        self.super_resolution = SRCNN(bands)

    @staticmethod
    def halo(ratio: int = 1) -> int:
        """Receptive-field radius in fine pixels: 4 + 2 + 2 per SRCNN block, two blocks."""
        return 16

    def forward(self, coarse: torch.Tensor) -> torch.Tensor:
        """The fine-resolution estimate of a coarse image (both stages)."""
        return self.super_resolution(self.mapping(coarse))


#: Model name -> class.
MODELS: dict[str, type[nn.Module]] = {
    "edcstfn": EDCSTFN,
    "dcstfn": DCSTFN,
    "stfdcnn": STFDCNN,
    "ganstfm": GANSTFM,
}


def build_model(
    name: str, bands: int, ratio: int | None, widths: Sequence[int] | None = None
) -> nn.Module:
    """A freshly initialised model ``name`` (``edcstfn``, ``dcstfn``, ``stfdcnn`` or
    ``ganstfm``; ``widths``: GAN-STFM's encoder widths, the published ones by default).

    Raises
    ------
    ValueError
        For an unknown name, or DCSTFN without a power-of-2 ratio.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; one of {', '.join(MODELS)}")
    if name == "dcstfn":
        if ratio is None:
            raise ValueError("DCSTFN reads the coarse images on their native grid: give the ratio")
        return DCSTFN(bands, ratio)
    if name == "ganstfm":
        return GANSTFM(bands, tuple(widths or WIDTHS_GANSTFM))
    return MODELS[name](bands)


def model_halo(name: str, ratio: int | None) -> int:
    """The tile halo in fine pixels of model ``name`` (see each model's ``halo``)."""
    if name == "dcstfn":
        if ratio is None:
            raise ValueError("DCSTFN needs the coarse/fine ratio")
        return DCSTFN.halo(ratio)
    return int(MODELS[name].halo())  # type: ignore[attr-defined]
