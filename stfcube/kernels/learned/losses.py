"""Training losses: masked MSE, MS-SSIM (standard, and the EDCSTFN authors' variant), EDCSTFN's
compound loss with its frozen feature encoder.

MS-SSIM here is Wang, Simoncelli & Bovik (2003): 5 scales, weights (0.0448, 0.2856, 0.3001,
0.2363, 0.1333), an 11-pixel Gaussian window (sigma 1.5) without padding, 2 x 2 average pooling
between scales, ``prod_{i<M} cs_i^w_i * ssim_M^w_M`` with the data range given (1 for scaled
reflectance, never guessed from the data). ``variant="authors"`` reproduces the product in the
EDCSTFN code, ``prod_{i<M} (cs_i^w_i * ssim_M^w_M)`` (the last scale's SSIM enters M - 1 times).
Both map every cs/ssim value to ``(x + 1) / 2`` before the powers (the code's ``normalize=True``;
negative values would make fractional powers undefined) and shrink the window to the image at
coarse scales (patches under 176 px), as the authors' code does.

Masks: invalid target pixels are excluded from the MSE; for the structural terms they take the
prediction's value, so they add no error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Weights of the five MS-SSIM scales (Wang et al. 2003).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: MS-SSIM variants: the standard product, or the EDCSTFN code's.
MS_SSIM_VARIANTS = ("standard", "authors")


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the valid pixels ``valid`` (N, y, x) of every band."""
    weight = valid[:, None].to(prediction.dtype).expand_as(prediction)
    error = torch.where(weight > 0, prediction - target, torch.zeros_like(prediction))
    return (error**2).sum() / weight.sum().clamp_min(1.0)


def _gaussian(size: int, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_cs(
    x: torch.Tensor, y: torch.Tensor, data_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term of ``x`` and ``y`` (valid Gaussian window)."""
    size = min(11, x.shape[-2], x.shape[-1])
    g = _gaussian(size).to(x)
    window = (g[:, None] * g[None, :]).expand(x.shape[1], 1, size, size)

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(image, window, groups=x.shape[1])

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    ssim = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs
    return ssim.mean(), cs.mean()


def ms_ssim(
    x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, variant: str = "standard"
) -> torch.Tensor:
    """MS-SSIM of two ``(N, B, y, x)`` batches (see the module doc for the two variants)."""
    if variant not in MS_SSIM_VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(MS_SSIM_VARIANTS)}, got {variant!r}")
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=x.dtype, device=x.device)
    css, ssim = [], x.new_zeros(())
    for scale in range(len(MS_SSIM_WEIGHTS)):
        ssim, cs = _ssim_cs(x, y, data_range)
        css.append(cs)
        if scale < len(MS_SSIM_WEIGHTS) - 1:
            x, y = F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(y, 2, ceil_mode=True)
    cs_terms = ((torch.stack(css[:-1]) + 1) / 2) ** weights[:-1]
    last = ((ssim + 1) / 2) ** weights[-1]
    if variant == "authors":
        return torch.prod(cs_terms * last)
    return torch.prod(cs_terms) * last


class FeatureAutoencoder(nn.Module):
    """EDCSTFN's hourglass autoencoder; its frozen encoder gives the feature loss.

    Encoder: 3x3 convolutions B -> 32 -> 64 -> 128 (stride 2) -> 128, replication padding, ReLU.
    Decoder: 128 -> 128, ReLU, bicubic x2, 128 -> 64, ReLU, 64 -> 32, ReLU, 1x1 32 -> B.
    """

    def __init__(self, bands: int) -> None:
        super().__init__()

        def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
            return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="replicate")

        self.encoder = nn.Sequential(
            conv(bands, 32), nn.ReLU(), conv(32, 64), nn.ReLU(),
            conv(64, 128, 2), nn.ReLU(), conv(128, 128), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(conv(128, 128), nn.ReLU())
        self.tail = nn.Sequential(
            conv(128, 64), nn.ReLU(), conv(64, 32), nn.ReLU(), nn.Conv2d(32, bands, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``image`` (even sizes)."""
        up = F.interpolate(self.head(self.encoder(image)), scale_factor=2.0, mode="bicubic")
        return self.tail(up)


def autoencoder_loss(
    reconstruction: torch.Tensor, image: torch.Tensor, variant: str = "standard"
) -> torch.Tensor:
    """The autoencoder's training loss: L1 + 0.8 (1 - MS-SSIM)."""
    return F.l1_loss(reconstruction, image) + 0.8 * (
        1 - ms_ssim(reconstruction, image, 1.0, variant)
    )


class CompoundLoss(nn.Module):
    """EDCSTFN's loss: MSE + MSE of encoder features + ``alpha`` (1 - MS-SSIM).

    Parameters
    ----------
    encoder
        The trained autoencoder's encoder (frozen here).
    alpha
        Weight of the MS-SSIM term (0.8 in the authors' current code).
    variant
        ``"standard"`` or ``"authors"`` MS-SSIM.
    """

    def __init__(self, encoder: nn.Module, alpha: float = 0.8, variant: str = "standard") -> None:
        super().__init__()
        self.encoder = encoder.eval()
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.alpha, self.variant = alpha, variant

    def forward(
        self, prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """The loss over the valid target pixels (N, y, x)."""
        filled = torch.where(valid[:, None], target, prediction.detach())
        features = F.mse_loss(self.encoder(prediction), self.encoder(filled))
        structure = 1 - ms_ssim(prediction, filled, 1.0, self.variant)
        return masked_mse(prediction, target, valid) + features + self.alpha * structure
