"""GAN-STFM's training parts: the multi-scale spectral-norm discriminator, the feature
autoencoder and the losses (least-squares GAN, feature MSE, cosine, MS-SSIM).

Built from ``research/learned_stf.md`` section 3.3-3.4 (no code of the authors copied; their
pretrained autoencoder is not used: :class:`FeatureUNet` is trained on the cube first).

* :class:`MSDiscriminator`: conditional on ``C(tp)`` (input: image and ``C(tp)`` stacked), three
  discriminators on the input at scales 1, 1/2 and 1/4 (nearest), each a chain of residual
  down-blocks (batch norm, LeakyReLU, spectral-normalised 3x3 stride-2 convolution, batch norm,
  LeakyReLU, spectral-normalised 1x1; spectral-normalised 1x1 stride-2 shortcut) and a
  spectral-normalised 1x1 to one channel, no sigmoid. Their outputs are averaged into one score
  over scales, positions and batch. 3 665 959 parameters for 6 bands.
* :class:`FeatureUNet`: encoder 3x3 B -> 16, then three stride-2 3x3 (32, 64, 128), LeakyReLU,
  replication padding; its decoder (nearest x2, 3x3 convolution, U-Net skip concatenation,
  1x1 to B) is used only to train it. The frozen encoder gives the feature and cosine terms.
* :class:`ReconstructionLoss`: ``MSE(E(p), E(t)) + (1 - cos(E(p), E(t))) + (1 - MS-SSIM(p, t))``;
  the generator's loss adds ``1e-3`` x the least-squares generator loss
  (:data:`ADVERSARIAL_WEIGHT`). Invalid target pixels take the prediction's value, so they add
  no error (and the discriminator sees the same values there in real and fake images).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from stfcube.kernels.learned.losses import ms_ssim

#: Channels of the three discriminators after the input (the input has 2 x bands).
DISCRIMINATOR_WIDTHS = (
    (32, 32, 64, 64, 128, 128, 256, 256),
    (32, 64, 64, 128, 128, 256, 256),
    (32, 64, 128, 128, 256, 256),
)
#: Weight of the least-squares adversarial term in the generator's loss.
ADVERSARIAL_WEIGHT = 1e-3
#: Weight of the MS-SSIM term in the autoencoder's loss.
AUTOENCODER_SSIM_WEIGHT = 0.84


class DownBlock(nn.Module):
    """Residual down-block of the discriminator (halves the size)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.LeakyReLU(),
            spectral_norm(nn.Conv2d(c_in, c_in, 3, stride=2, padding=1)),
            nn.BatchNorm2d(c_in), nn.LeakyReLU(), spectral_norm(nn.Conv2d(c_in, c_out, 1)),
        )  # fmt: skip
        self.shortcut = spectral_norm(nn.Conv2d(c_in, c_out, 1, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output."""
        return self.body(x) + self.shortcut(x)


class MSDiscriminator(nn.Module):
    """Conditional multi-scale discriminator: one score for a batch of (image, ``C(tp)``).

    Parameters
    ----------
    bands
        Bands of the image and of the coarse image.
    """

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.scales = nn.ModuleList()
        for widths in DISCRIMINATOR_WIDTHS:
            channels = (2 * bands, *widths)
            blocks = [DownBlock(a, b) for a, b in itertools.pairwise(channels)]
            self.scales.append(nn.Sequential(*blocks, spectral_norm(nn.Conv2d(widths[-1], 1, 1))))

    def forward(self, image: torch.Tensor, coarse_pred: torch.Tensor) -> torch.Tensor:
        """The mean score over the three scales, positions and batch."""
        x = torch.cat([image, coarse_pred], dim=1)
        scores = []
        for k, net in enumerate(self.scales):
            scaled = x if k == 0 else F.interpolate(x, scale_factor=0.5**k, mode="nearest")
            scores.append(net(scaled).mean())
        return torch.stack(scores).mean()


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss: ``((D(real) - 1)^2 + D(fake)^2) / 2``."""
    return 0.5 * ((real - 1) ** 2 + fake**2)


def generator_adversarial_loss(fake: torch.Tensor) -> torch.Tensor:
    """Least-squares generator loss: ``(D(fake) - 1)^2 / 2``."""
    return 0.5 * (fake - 1) ** 2


def _conv3(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="replicate"),
        nn.LeakyReLU(),
    )


class FeatureUNet(nn.Module):
    """GAN-STFM's feature autoencoder (sizes divisible by 8); ``encoder`` gives the features."""

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            [_conv3(bands, 16), _conv3(16, 32, 2), _conv3(32, 64, 2), _conv3(64, 128, 2)]
        )
        self.ups = nn.ModuleList([_conv3(128, 64), _conv3(128, 32), _conv3(64, 16)])
        self.out = nn.Conv2d(32, bands, 1)
        self.encoder = nn.Sequential(*self.levels)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``image``."""
        skips = []
        x = image
        for level in self.levels:
            x = level(x)
            skips.append(x)
        for up, skip in zip(self.ups, reversed(skips[:-1]), strict=True):
            x = torch.cat([up(F.interpolate(x, scale_factor=2.0, mode="nearest")), skip], dim=1)
        return self.out(x)


def feature_autoencoder_loss(reconstruction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """The autoencoder's training loss: smooth L1 + 0.84 (1 - MS-SSIM)."""
    structure = 1 - ms_ssim(reconstruction, image, 1.0)
    return F.smooth_l1_loss(reconstruction, image) + AUTOENCODER_SSIM_WEIGHT * structure


class ReconstructionLoss(nn.Module):
    """GAN-STFM's reconstruction loss (no pixel term; see the module doc).

    Parameters
    ----------
    encoder
        The trained :class:`FeatureUNet`'s encoder (frozen here).
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)

    def forward(
        self, prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """The loss over the valid target pixels ``valid`` (N, y, x)."""
        filled = fill_target(prediction, target, valid)
        a, b = self.encoder(prediction), self.encoder(filled)
        cosine = F.cosine_similarity(a, b, dim=1).mean()
        structure = 1 - ms_ssim(prediction, filled, 1.0)
        return F.mse_loss(a, b) + (1 - cosine) + structure


def fill_target(
    prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """``target`` where ``valid`` (N, y, x), else the (detached) prediction."""
    return torch.where(valid[:, None], target, prediction.detach())
