"""FSDAF's seamless mode: what the program computes per block made global or local, so that any
tiling gives the whole image's numbers.

Global (:func:`global_statistics`, once per pair, over the whole image): the ISODATA centres
(without a class map), the percentile clipping of F1, the class fractions of every native coarse
pixel and the unmixing per prediction date, the clamp range per date and the similarity
thresholds. Local (:func:`predict_region`): classes (nearest centre or the class map), the
heterogeneity index (window w), the temporal prediction, the residual of each native coarse
pixel, the local thin-plate spline (``tps_radius`` coarse pixels), the residual distribution
and the final smoothing (window w). A fine pixel's output depends on fine data within
``2 w + scale_factor`` pixels and native coarse pixels within ``2 tps_radius`` of those.

Nodata: invalid fine pixels (NaN) are background: no class, no fraction (their coarse pixel
leaves the unmixing), never a candidate, no prediction. Invalid coarse pixels (NaN) leave the
unmixing and the spline; their residual counts as 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stfcube.kernels.fsdaf._change import (
    apply_clip,
    cell_means,
    class_fractions,
    clip_bounds,
    distribute_residual,
    heterogeneity,
    unmix,
)
from stfcube.kernels.fsdaf._isodata import classify, isodata_centres
from stfcube.kernels.fsdaf._program import Smoother, finish
from stfcube.kernels.fsdaf._tps import tps_local
from stfcube.kernels.fsdaf.params import MAX_CLASS, FsdafParams


@dataclass(frozen=True)
class Geometry:
    """Where the native coarse block lies: ``ratio`` fine pixels per coarse pixel, its top-left
    corner ``offset`` fine pixels from the fine array's (<= 0)."""

    ratio: int
    offset: tuple[int, int]

    def cells(self, shape: tuple[int, int], coarse_shape: tuple[int, int]) -> np.ndarray:
        """Row-major native cell of every fine pixel of an array of ``shape``."""
        rows = (np.arange(shape[0]) - self.offset[0]) // self.ratio
        cols = (np.arange(shape[1]) - self.offset[1]) // self.ratio
        if rows.min() < 0 or cols.min() < 0 or rows.max() >= coarse_shape[0]:
            raise ValueError("the native coarse block does not cover the fine array")
        if cols.max() >= coarse_shape[1]:
            raise ValueError("the native coarse block does not cover the fine array")
        return rows[:, None] * coarse_shape[1] + cols[None, :]

    def upsample(self, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """``values`` ``(band, cy, cx)`` on the fine pixels (nearest: the containing pixel)."""
        cells = self.cells(shape, values.shape[1:])
        return values.reshape(values.shape[0], -1)[:, cells]


def classes_of(
    fine: np.ndarray, class_map: np.ndarray | None, centres: np.ndarray | None
) -> np.ndarray:
    """Class of every fine pixel: the class map's, or 1 + the nearest ISODATA centre; 0 where
    the fine pixel is invalid."""
    usable = np.isfinite(fine).all(axis=0)
    if class_map is None:
        if centres is None:
            raise ValueError("without a class map the ISODATA centres are needed")
        return classify(fine, centres[np.isfinite(centres).all(axis=1)], usable)
    classes = np.asarray(class_map)
    if classes.min(initial=0) < 0 or classes.max(initial=0) > MAX_CLASS:
        raise ValueError(f"class map values must lie in 0 .. {MAX_CLASS}")
    return np.where(usable, classes, 0).astype(np.int16)


def global_statistics(
    fine: np.ndarray,
    class_map: np.ndarray | None,
    coarse: np.ndarray,
    coarse_preds: np.ndarray,
    geometry: Geometry,
    params: FsdafParams,
) -> dict[str, np.ndarray]:
    """The whole-image quantities of the seamless mode (see the module doc).

    Parameters
    ----------
    fine
        F1 ``(band, y, x)``, NaN = invalid.
    class_map
        ``(y, x)`` integer classes 0 .. 255 (0: unclassified), or ``None`` for ISODATA.
    coarse, coarse_preds
        C1 ``(band, cy, cx)`` and the C2 of every date ``(date, band, cy, cx)`` on the whole
        native grid, NaN = invalid.
    geometry
        Ratio and offset of the native grid.
    params
        The parameters.

    Returns
    -------
    dict
        ``centres`` ``(max_classes, band)`` (NaN rows unused; all NaN with a class map),
        ``clip`` ``(band, 4)``, ``c_rate`` ``(date, band, 256)`` per class value, ``clamp``
        ``(date, band, 2)``, ``threshold`` ``(band,)``.
    """
    usable = np.isfinite(fine).all(axis=0)
    if not usable.any():
        raise ValueError("the fine image has no valid pixel")
    centres = np.full((params.max_classes, fine.shape[0]), np.nan)
    if class_map is None:
        found = isodata_centres(fine[:, usable].T, params)
        centres[: len(found)] = found
    classes = classes_of(fine, class_map, centres)
    dn_range = (params.dn_min, params.dn_max)
    clip = np.stack([clip_bounds(b[usable], params.clip_percentiles, dn_range) for b in fine])
    f1 = apply_clip(fine, clip, dn_range)
    labels = np.unique(classes[usable & (classes > 0)])
    if labels.size == 0:
        raise ValueError("no valid fine pixel has a class (class 0 is unclassified)")
    cell = geometry.cells(fine.shape[1:], coarse.shape[1:])
    n_cells = coarse.shape[1] * coarse.shape[2]
    inside = np.ones(cell.shape, dtype=bool)
    fractions = class_fractions(classes, labels, cell, n_cells, inside)
    all_classes = np.concatenate([[0], labels])
    low = np.array(
        [
            [f1[b][usable & (classes == c)].min(initial=np.inf) for c in all_classes]
            for b in range(len(f1))
        ]
    )
    high = np.array(
        [
            [f1[b][usable & (classes == c)].max(initial=-np.inf) for c in all_classes]
            for b in range(len(f1))
        ]
    )
    n_dates = len(coarse_preds)
    c_rate = np.zeros((n_dates, fine.shape[0], MAX_CLASS + 1))
    clamp = np.empty((n_dates, fine.shape[0], 2))
    for d, pred in enumerate(coarse_preds):
        change = (pred - coarse).reshape(fine.shape[0], -1)
        c_rate[d][:, labels] = unmix(
            fractions, change, params.num_pure, params.nonchange_percentiles
        )
        shifted_low = (low + c_rate[d][:, all_classes]).min(axis=1)
        shifted_high = (high + c_rate[d][:, all_classes]).max(axis=1)
        clamp[d, :, 0] = np.maximum(
            np.minimum(np.nanmin(pred, axis=(1, 2)), shifted_low), params.dn_min
        )
        clamp[d, :, 1] = np.minimum(
            np.maximum(np.nanmax(pred, axis=(1, 2)), shifted_high), params.dn_max
        )
    threshold = fine[:, usable].std(axis=1, ddof=1) * 2.0 / labels.size
    return {
        "centres": centres,
        "clip": clip,
        "c_rate": c_rate,
        "clamp": clamp,
        "threshold": threshold,
    }


@dataclass(frozen=True)
class RegionResult:
    """Prediction and distributed residual ``(band, y, x)``, classes ``(y, x)`` of a window."""

    prediction: np.ndarray
    residual: np.ndarray
    classes: np.ndarray


def predict_region(
    fine: np.ndarray,
    classes: np.ndarray,
    coarse: np.ndarray,
    coarse_pred: np.ndarray,
    geometry: Geometry,
    statistics: dict[str, np.ndarray],
    date: int,
    params: FsdafParams,
    smooth: Smoother,
    window: tuple[int, int, int, int],
) -> RegionResult:
    """One date's seamless prediction on ``window`` of a fine array cut to the image.

    ``classes`` from :func:`classes_of`; ``coarse``/``coarse_pred`` the native block (cut to
    the image) covering the array plus ``2 * tps_radius`` coarse pixels where the image has
    them; ``statistics`` from :func:`global_statistics`.
    """
    shape = fine.shape[1:]
    usable = np.isfinite(fine).all(axis=0)
    dn_range = (params.dn_min, params.dn_max)
    f1 = apply_clip(fine, statistics["clip"], dn_range)
    l2_1 = f1 + statistics["c_rate"][date][:, classes]
    cell = geometry.cells(shape, coarse.shape[1:])
    n_cells = coarse.shape[1] * coarse.shape[2]
    predicted_change = cell_means(l2_1, cell, n_cells, usable) - cell_means(
        f1, cell, n_cells, usable
    )
    coarse_change = (coarse_pred - coarse).reshape(fine.shape[0], -1)
    residual = np.nan_to_num(coarse_change - predicted_change)
    ratio = geometry.ratio
    tps = tps_local(coarse_pred, ratio, params.tps_radius)
    rows = np.arange(shape[0]) - geometry.offset[0]
    cols = np.arange(shape[1]) - geometry.offset[1]
    l2_tps = tps[
        :,
        (rows // ratio)[:, None],
        (cols // ratio)[None, :],
        (rows % ratio)[:, None],
        (cols % ratio)[None, :],
    ]
    homogeneity = heterogeneity(classes, params.window_radius)
    spread = distribute_residual(
        l2_tps - l2_1, homogeneity, residual, cell, usable, params.weight_cap
    )
    clamp = statistics["clamp"][date]
    change = np.clip(l2_1 + spread, clamp[:, :1, None], clamp[:, 1:, None]) - f1
    sums = smooth(
        fine, change, statistics["threshold"], params.window_radius, params.n_similar, window
    )
    inner = (slice(None), slice(window[0], window[1]), slice(window[2], window[3]))
    c_change = geometry.upsample(coarse_pred - coarse, shape)
    prediction = finish(fine[inner] + sums, fine[inner], change[inner], c_change[inner], params)
    prediction = np.where(usable[inner[1:]], prediction, np.nan)
    return RegionResult(prediction, np.where(usable, spread, np.nan)[inner], classes[inner[1:]])
