"""One training step's loss per model, EDCSTFN's autoencoder, and validation on held-out dates.

Everything takes the NumPy batches of :class:`~stfcube.pipeline.learned.samples.PatchSampler` as
torch tensors; the models and losses come from :mod:`stfcube.kernels.learned`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from stfcube.pipeline.learned import modeldir as md
from stfcube.pipeline.learned.samples import PatchSampler, Site, nearest
from stfcube.pipeline.learned.settings import TrainSettings


def transition(settings: TrainSettings, ratio: int | None) -> int:
    """STFDCNN's transition block in fine pixels (0: half the coarse ratio, or 8)."""
    return settings.transition or max(1, (ratio or 16) // 2)


def torch_batch(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    import torch

    return {key: torch.from_numpy(value) for key, value in batch.items()}


def pairs_of(batch: dict[str, Any], n: int) -> list[Any]:
    from stfcube.kernels.learned import Pair

    return [
        Pair(
            batch[f"fine{k}"],
            batch[f"fine{k}_valid"],
            batch[f"coarse{k}"],
            batch[f"coarse{k}_valid"],
        )
        for k in range(n)
    ]


def _stfdcnn_loss(model: Any, batch: dict[str, Any], block: int) -> Any:
    """Both stages: coarse -> transition image, transition image -> fine (masked MSE)."""
    import torch.nn.functional as F

    from stfcube.kernels.learned import masked_mse
    from stfcube.kernels.learned.api import fill_coarse, upsample_nearest

    valid = batch["target_valid"]
    coarse, _ = fill_coarse(
        batch["coarse_pred"], batch["coarse_pred_valid"], batch["coarse_pred"], valid
    )
    target = torch_where_valid(batch["target"], valid, coarse)
    low = upsample_nearest(F.avg_pool2d(target, block), block)
    return masked_mse(model.mapping(coarse), low, valid) + masked_mse(
        model.super_resolution(low), batch["target"], valid
    )


def torch_where_valid(values: Any, valid: Any, other: Any) -> Any:
    """``values`` where ``valid`` (N, y, x), else ``other``."""
    import torch

    return torch.where(valid[:, None], values, other)


def _pair_loss(model: Any, batch: dict[str, Any], settings: TrainSettings, loss: Any) -> Any:
    """The loss of each reference's prediction, averaged (EDCSTFN's two-pair training)."""
    import torch

    from stfcube.kernels.learned import predict

    valid = batch["target_valid"]
    terms = []
    for pair in pairs_of(batch, settings.pairs):
        prediction = predict(model, [pair], batch["coarse_pred"], batch["coarse_pred_valid"])
        ok = valid & torch.isfinite(prediction).all(1)
        terms.append(loss(torch.nan_to_num(prediction), torch.nan_to_num(batch["target"]), ok))
    return sum(terms[1:], terms[0]) / len(terms)


def train_autoencoder(site: Site, train: list[int], settings: TrainSettings, rng: Any) -> Any:
    """The feature autoencoder of EDCSTFN or GAN-STFM, trained on fine patches of the training
    dates; its encoder."""
    import torch

    from stfcube.kernels.learned import FeatureAutoencoder, FeatureUNet
    from stfcube.kernels.learned.adversarial import feature_autoencoder_loss
    from stfcube.kernels.learned.losses import autoencoder_loss

    bands = site.fine.shape[1]
    auto: Any
    if settings.model == "ganstfm":
        auto, loss = FeatureUNet(bands), feature_autoencoder_loss
    else:
        auto = FeatureAutoencoder(bands)

        def loss(reconstruction: Any, image: Any) -> Any:
            return autoencoder_loss(reconstruction, image, settings.ms_ssim)

    optimiser = torch.optim.Adam(
        auto.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    sampler = PatchSampler(site, train, "edcstfn", settings.patch, 1)
    for _ in range(settings.autoencoder_steps):
        batch = torch_batch(sampler.batch(rng, settings.batch))
        image = torch.where(batch["target_valid"][:, None], batch["target"], batch["coarse_pred"])
        image = torch.nan_to_num(image)
        optimiser.zero_grad()
        loss(auto(image), image).backward()
        optimiser.step()
    return auto.encoder


def _validation_inputs(site: Site, model_name: str, target: int, refs: list[int], size: int) -> Any:
    """Tensors of a centre crop for predicting ``target`` from ``refs`` (whole coarse pixels
    for DCSTFN)."""
    import torch

    from stfcube.kernels.learned import Pair

    rows, cols = site.fine.shape[-2:]
    step = site.ratio if model_name == "dcstfn" and site.ratio else 1
    r0, c0 = site.native_row0 if step > 1 else 0, site.native_col0 if step > 1 else 0
    if step > 1:
        assert site.native is not None
        rows, cols = site.native.shape[-2] * step, site.native.shape[-1] * step
    h, w = (min(size, rows) // step) * step, (min(size, cols) // step) * step
    top = r0 + ((rows - h) // 2 // step) * step
    left = c0 + ((cols - w) // 2 // step) * step
    fine = (slice(top, top + h), slice(left, left + w))
    coarse, valid, window = site.coarse, site.coarse_valid, fine
    if step > 1:
        assert site.native is not None and site.native_valid is not None
        i0, j0 = (top - r0) // step, (left - c0) // step
        coarse, valid = site.native, site.native_valid
        window = (slice(i0, i0 + h // step), slice(j0, j0 + w // step))

    def t(array: np.ndarray, index: int, *where: slice) -> Any:
        return torch.from_numpy(np.ascontiguousarray(array[index, ..., where[0], where[1]]))[None]

    pairs = [
        Pair(
            t(site.fine, r, *fine),
            t(site.fine_valid, r, *fine),
            t(coarse, r, *window),
            t(valid, r, *window),
        )
        for r in refs
    ]
    truth = (site.fine[target][(slice(None), *fine)], site.fine_valid[target][fine])
    return pairs, t(coarse, target, *window), t(valid, target, *window), truth


def validate(
    model: Any, site: Site, train: list[int], held: list[int], settings: TrainSettings
) -> dict[str, Any]:
    """Masked MSE (scaled units), RMSE (cube units) and SSIM per held-out date and band
    (GAN-STFM: in its ``frozen`` mode, and under ``window`` in its ``window`` mode)."""
    import torch

    from stfcube.kernels.learned import predict

    n_refs = 2 if settings.pairs == 2 and len(train) >= 2 else 1
    # GAN-STFM: the nearest other fine image, as in the engine; the CNNs: the nearest pair(s)
    pool = range(len(site.dates)) if settings.model == "ganstfm" else train
    per_date: dict[str, Any] = {}
    model.eval()
    if settings.model == "ganstfm":
        model.set_statistics("frozen")
    with torch.no_grad():
        for target in held:
            refs = nearest(site.dates, target, pool, n_refs)
            pairs, pred_c, pred_v, (truth, ok) = _validation_inputs(
                site, settings.model, target, refs, settings.validation_size
            )
            out = predict(model, pairs, pred_c, pred_v)[0].numpy() / md.SCALE
            per_date[str(site.dates[target])[:10]] = {
                "references": [str(site.dates[r])[:10] for r in refs],
                **_scores(out, truth / md.SCALE, ok),
            }
            if settings.model == "ganstfm":  # also the window mode, the crop as one window
                model.set_statistics("window")
                out = predict(model, pairs, pred_c, pred_v)[0].numpy() / md.SCALE
                model.set_statistics("frozen")
                scores = _scores(out, truth / md.SCALE, ok)
                per_date[str(site.dates[target])[:10]]["window"] = scores
    model.train()
    return {"dates": per_date, "mse": float(np.mean([d["mse"] for d in per_date.values()]))}


def _scores(out: np.ndarray, truth: np.ndarray, ok: np.ndarray) -> dict[str, Any]:
    """MSE (scaled units) over the valid pixels, RMSE and SSIM per band (cube units)."""
    from stfcube.kernels import metrics

    ok = ok & np.isfinite(out).all(0)
    return {
        "mse": float(np.mean(((out - truth)[:, ok] * md.SCALE) ** 2)) if ok.any() else np.nan,
        "rmse": [metrics.rmse(out[b], truth[b], ok) for b in range(len(out))],
        "ssim": [metrics.ssim(out[b], truth[b], ok, data_range=10000.0) for b in range(len(out))],
    }


def make_loss(settings: TrainSettings, encoder: Any) -> Callable[[Any, Any, Any], Any]:
    """The pixel loss of ``settings.model``: EDCSTFN's compound loss, GAN-STFM's
    reconstruction loss, else masked MSE."""
    from stfcube.kernels.learned import CompoundLoss, ReconstructionLoss, masked_mse

    if settings.model == "edcstfn":
        return CompoundLoss(encoder, settings.alpha, settings.ms_ssim)
    if settings.model == "ganstfm":
        return ReconstructionLoss(encoder)
    return masked_mse


def step_loss(
    model: Any, batch: dict[str, np.ndarray], settings: TrainSettings, loss: Any, ratio: int | None
) -> Any:
    """The loss of one batch."""
    tensors = torch_batch(batch)
    if settings.model == "stfdcnn":
        return _stfdcnn_loss(model, tensors, transition(settings, ratio))
    return _pair_loss(model, tensors, settings, loss)
