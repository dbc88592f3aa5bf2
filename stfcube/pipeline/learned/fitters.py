"""What a training run updates, batch by batch: one network and its optimiser (the CNNs), or
GAN-STFM's generator and discriminator with one optimiser each (:class:`AdversarialFitter`).

A fitter's :meth:`~Fitter.state` is what a checkpoint keeps of it (``model`` and ``optimiser``
for every fitter, plus ``discriminator`` and ``d_optimiser`` for GAN-STFM), so a killed run
resumes where it stopped.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from stfcube.pipeline.learned.samples import Site
from stfcube.pipeline.learned.settings import TrainSettings
from stfcube.pipeline.learned.steps import (
    make_loss,
    pairs_of,
    step_loss,
    torch_batch,
    train_autoencoder,
)


class Fitter(Protocol):
    """One training run's networks and optimisers."""

    model: Any

    def step(self, batch: dict[str, np.ndarray]) -> float:
        """Update on one batch; the (generator's) loss."""

    def state(self) -> dict[str, Any]:
        """The state dicts a checkpoint keeps."""

    def load(self, saved: dict[str, Any]) -> None:
        """Restore :meth:`state` from a checkpoint."""


def _adam(module: Any, settings: TrainSettings) -> Any:
    import torch

    return torch.optim.Adam(module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


class SupervisedFitter:
    """A CNN and its Adam optimiser, minimising the model's loss (:func:`make_loss`)."""

    def __init__(self, model: Any, settings: TrainSettings, loss: Any, ratio: int | None) -> None:
        self.model, self.settings, self.loss, self.ratio = model, settings, loss, ratio
        self.optimiser = _adam(model, settings)

    def step(self, batch: dict[str, np.ndarray]) -> float:
        """One Adam step on the batch's loss."""
        self.optimiser.zero_grad()
        value = step_loss(self.model, batch, self.settings, self.loss, self.ratio)
        value.backward()
        self.optimiser.step()
        return float(value.detach())

    def state(self) -> dict[str, Any]:
        """Model and optimiser state."""
        return {"model": self.model.state_dict(), "optimiser": self.optimiser.state_dict()}

    def load(self, saved: dict[str, Any]) -> None:
        """Restore model and optimiser."""
        self.model.load_state_dict(saved["model"])
        self.optimiser.load_state_dict(saved["optimiser"])


class AdversarialFitter(SupervisedFitter):
    """GAN-STFM: per batch a discriminator step (least squares, real = the observed fine image,
    fake = the prediction, both beside ``C(tp)``), then a generator step on the reconstruction
    loss plus ``1e-3`` x the least-squares generator loss."""

    def __init__(self, model: Any, settings: TrainSettings, loss: Any, bands: int) -> None:
        from stfcube.kernels.learned import MSDiscriminator

        super().__init__(model, settings, loss, None)
        self.discriminator = MSDiscriminator(bands)
        self.d_optimiser = _adam(self.discriminator, settings)

    def step(self, batch: dict[str, np.ndarray]) -> float:
        """A discriminator step, then a generator step; the generator's loss."""
        import torch

        from stfcube.kernels.learned import predict
        from stfcube.kernels.learned.adversarial import (
            ADVERSARIAL_WEIGHT,
            discriminator_loss,
            fill_target,
            generator_adversarial_loss,
        )

        tensors = torch_batch(batch)
        coarse_pred = torch.nan_to_num(tensors["coarse_pred"])
        raw = predict(self.model, pairs_of(tensors, 1), coarse_pred, tensors["coarse_pred_valid"])
        ok = tensors["target_valid"] & torch.isfinite(raw).all(1)
        fake = torch.nan_to_num(raw)
        real = fill_target(fake, torch.nan_to_num(tensors["target"]), ok)
        self.d_optimiser.zero_grad()
        d_loss = discriminator_loss(
            self.discriminator(real, coarse_pred), self.discriminator(fake.detach(), coarse_pred)
        )
        d_loss.backward()
        self.d_optimiser.step()
        self.optimiser.zero_grad()
        adversarial = generator_adversarial_loss(self.discriminator(fake, coarse_pred))
        g_loss = self.loss(fake, real, ok) + ADVERSARIAL_WEIGHT * adversarial
        g_loss.backward()
        self.optimiser.step()
        return float(g_loss.detach())

    def state(self) -> dict[str, Any]:
        """Generator, discriminator and both optimisers."""
        return {
            **super().state(),
            "discriminator": self.discriminator.state_dict(),
            "d_optimiser": self.d_optimiser.state_dict(),
        }

    def load(self, saved: dict[str, Any]) -> None:
        """Restore generator, discriminator and both optimisers."""
        super().load(saved)
        self.discriminator.load_state_dict(saved["discriminator"])
        self.d_optimiser.load_state_dict(saved["d_optimiser"])


def make_fitter(site: Site, train: list[int], settings: TrainSettings, rng: Any) -> Fitter:
    """A freshly initialised fitter for ``settings.model`` (EDCSTFN and GAN-STFM first train
    their feature autoencoder, drawing its patches from ``rng``)."""
    from stfcube.kernels.learned import build_model

    bands = site.fine.shape[1]
    model = build_model(settings.model, bands, site.ratio, settings.widths)
    encoder = None
    if settings.model in ("edcstfn", "ganstfm"):
        encoder = train_autoencoder(site, train, settings, rng)  # seeded: same on resume
    loss = make_loss(settings, encoder)
    if settings.model == "ganstfm":
        return AdversarialFitter(model, settings, loss, bands)
    return SupervisedFitter(model, settings, loss, site.ratio)
