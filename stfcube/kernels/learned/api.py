"""Prediction with a learned model: pure tensors in and out, shared by training and the engine.

Inputs are scaled reflectance tensors with validity masks; invalid pixels are filled pixel by
pixel before the network (:func:`fill_pair`, so a tile sees the same values as the whole image):
an invalid fine pixel takes the pair's coarse value, an invalid coarse pixel the other image's
value (the pair's fine image, or the other coarse date), 0 where both are invalid. The
prediction is NaN where the prediction date's coarse pixel is invalid or no pair has a valid fine
pixel.

Two pairs: EDCSTFN merges its features (:meth:`EDCSTFN.forward_two`); DCSTFN and STFDCNN weigh
the two pairs' predictions per pixel by the inverse of the change they predict
(``|pred_k - fine_k|``, band mean; 0 for a pair whose fine pixel is invalid).

GAN-STFM takes one reference, of which only the fine image is used (:func:`fill_reference`:
an invalid fine pixel takes the prediction date's coarse value and vice versa); its prediction
is NaN where either is invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from stfcube.kernels.learned.ganstfm import GANSTFM, WindowGrid, fuse_windows
from stfcube.kernels.learned.models import DCSTFN, EDCSTFN, STFDCNN


@dataclass(frozen=True)
class Pair:
    """One pair: fine and coarse ``(N, B, y, x)`` with masks ``(N, y, x)`` (coarse of DCSTFN on
    the native grid)."""

    fine: torch.Tensor
    fine_valid: torch.Tensor
    coarse: torch.Tensor
    coarse_valid: torch.Tensor


def _fill(values: torch.Tensor, valid: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``values`` where ``valid`` (N, y, x), else ``other``, and 0 where that is not finite."""
    out = torch.where(valid[:, None], values, other)
    return torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def fill_coarse(
    coarse: torch.Tensor,
    coarse_valid: torch.Tensor,
    coarse_pred: torch.Tensor,
    coarse_pred_valid: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two coarse dates with each invalid pixel taken from the other date (0 if both)."""
    return (
        _fill(coarse, coarse_valid, coarse_pred),
        _fill(coarse_pred, coarse_pred_valid, coarse),
    )


def fill_reference(
    fine: torch.Tensor,
    fine_valid: torch.Tensor,
    coarse_pred: torch.Tensor,
    coarse_pred_valid: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAN-STFM's inputs ``(C(tp), F(ref))``, each invalid pixel taken from the other (0 if
    both are invalid)."""
    return (
        _fill(coarse_pred, coarse_pred_valid, fine),
        _fill(fine, fine_valid, coarse_pred),
    )


def upsample_nearest(image: torch.Tensor, ratio: int) -> torch.Tensor:
    """Each coarse pixel repeated ``ratio`` x ``ratio`` times (last two axes)."""
    return image.repeat_interleave(ratio, dim=-2).repeat_interleave(ratio, dim=-1)


def _broadcast(pair: Pair, n: int) -> Pair:
    """``pair`` with its batch axis expanded to ``n`` (a pair shared by ``n`` dates)."""
    return Pair(
        *(
            t.expand(n, *t.shape[1:])
            for t in (pair.fine, pair.fine_valid, pair.coarse, pair.coarse_valid)
        )
    )


def _inverse_change_weights(
    results: Sequence[tuple[torch.Tensor, torch.Tensor]], pairs: Sequence[Pair]
) -> list[torch.Tensor]:
    """Per-pixel weights ``(N, 1, y, x)`` of each pair, inverse to its predicted change
    (``results``: each pair's prediction and filled fine image, so that an invalid, maybe NaN,
    fine pixel gives a weight of 0 and a finite gradient)."""
    raw = [
        pair.fine_valid[:, None] / ((pred - fine).abs().mean(1, keepdim=True) + 1e-6)
        for (pred, fine), pair in zip(results, pairs, strict=True)
    ]
    total = sum(raw[1:], raw[0]).clamp_min(1e-12)
    return [w / total for w in raw]


def _pair_prediction(
    model: nn.Module, pair: Pair, coarse_pred: torch.Tensor, coarse_pred_valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pair's prediction and its filled fine image (DCSTFN or STFDCNN)."""
    coarse, pred_filled = fill_coarse(
        pair.coarse, pair.coarse_valid, coarse_pred, coarse_pred_valid
    )
    if isinstance(model, DCSTFN):
        fine = _fill(pair.fine, pair.fine_valid, upsample_nearest(coarse, model.ratio))
        return model(fine, coarse, pred_filled), fine
    if isinstance(model, STFDCNN):
        fine = _fill(pair.fine, pair.fine_valid, coarse)
        # high-pass detail of the pair added to the network's estimate of the prediction date
        return fine + model(pred_filled) - model(coarse), fine
    raise TypeError(f"no pair prediction for {type(model).__name__}")


def predict(
    model: nn.Module,
    pairs: Sequence[Pair],
    coarse_pred: torch.Tensor,
    coarse_pred_valid: torch.Tensor,
    windows: WindowGrid | None = None,
) -> torch.Tensor:
    """F(tp) ``(N, B, y, x)`` from one or two pairs and the prediction date's coarse image.

    Parameters
    ----------
    model
        An :class:`EDCSTFN`, :class:`DCSTFN`, :class:`STFDCNN` or :class:`GANSTFM`.
    pairs
        One or two :class:`Pair` (batch ``N`` broadcast: usually the prediction dates); one
        for GAN-STFM, whose pair needs no coarse image.
    coarse_pred, coarse_pred_valid
        The prediction dates' coarse images (native grid for DCSTFN) and masks.
    windows
        GAN-STFM only: predict ``windows.region`` by windows of this grid, feathered
        (:func:`~stfcube.kernels.learned.ganstfm.fuse_windows`); ``None``: the whole input at
        once.

    Returns
    -------
    torch.Tensor
        The prediction (of the region with ``windows``), NaN where it is not defined (see the
        module doc).
    """
    if not 1 <= len(pairs) <= 2:
        raise ValueError(f"one or two pairs, got {len(pairs)}")
    pairs = [_broadcast(pair, coarse_pred.shape[0]) for pair in pairs]
    if isinstance(model, GANSTFM):
        if len(pairs) != 1:
            raise ValueError(f"GAN-STFM takes one reference, got {len(pairs)}")
        (pair,) = pairs
        inputs = fill_reference(pair.fine, pair.fine_valid, coarse_pred, coarse_pred_valid)
        if windows is None:
            out = model(*inputs)
        else:
            out = fuse_windows(model, *inputs, windows)
            cut = (slice(None), *windows.region)
            return torch.where(
                (pair.fine_valid[cut] & coarse_pred_valid[cut])[:, None], out, torch.nan
            )
    elif isinstance(model, EDCSTFN):
        filled = []
        for pair in pairs:
            coarse, pred = fill_coarse(
                pair.coarse, pair.coarse_valid, coarse_pred, coarse_pred_valid
            )
            filled.append((_fill(pair.fine, pair.fine_valid, coarse), coarse, pred))
        if len(filled) == 1:
            out = model(*filled[0])
        else:
            out = model.forward_two(filled[0][:2], filled[1][:2], filled[0][2])
    else:
        results = [_pair_prediction(model, p, coarse_pred, coarse_pred_valid) for p in pairs]
        predictions = [r[0] for r in results]
        weights = _inverse_change_weights(results, pairs)
        out = sum((w * p for w, p in zip(weights, predictions, strict=True)), torch.zeros(()))
    valid = pairs[0].fine_valid
    for pair in pairs[1:]:
        valid = valid | pair.fine_valid
    pred_valid = coarse_pred_valid
    if isinstance(model, DCSTFN):
        pred_valid = upsample_nearest(coarse_pred_valid, model.ratio)
    return torch.where((valid & pred_valid)[:, None], out, torch.nan)
