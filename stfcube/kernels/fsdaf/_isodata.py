"""ISODATA-like clustering of the fine base image (the classification of Zhu's FSDAF.pro).

The program calls ENVI's ``class_doit`` ISODATA, whose internals are not published; this is
the textbook ISODATA with the program's parameters (see :class:`stfcube.kernels.fsdaf.FsdafParams`):
centres start evenly spread on the diagonal ``mean +- std``; each iteration assigns every
sample to its nearest centre (Euclidean), drops classes under ``min_pixels``, moves the centres
to their means, stops when fewer than ``change_threshold`` of the samples changed class, then
splits (fewer than ``max_classes`` classes; a class whose largest band standard deviation
exceeds ``split_std * dn_max``, or any class while fewer than ``min_classes``) or merges (more
than ``min_classes``; the closest pairs under ``merge_distance * dn_max``, at most
``merge_pairs``). Centres are returned sorted by their band sum, so class 1 is the darkest.
Deterministic: the samples are a regular subsample, no random start.
"""

from __future__ import annotations

import numpy as np

from stfcube.kernels.fsdaf.params import FsdafParams


def nearest_centre(pixels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """0-based index of the nearest centre of every pixel ``(n, band)`` (first on ties)."""
    distance = ((pixels[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(distance, axis=1)


def subsample(pixels: np.ndarray, most: int) -> np.ndarray:
    """At most ``most`` rows of ``pixels``, every ``ceil(n / most)``-th."""
    step = max(1, -(-len(pixels) // most))
    return pixels[::step]


def _split(centres: np.ndarray, spread: np.ndarray, params: FsdafParams) -> np.ndarray:
    out = list(centres)
    for k in np.argsort(-spread.max(axis=1)):
        if len(out) >= params.max_classes:
            break
        band = int(np.argmax(spread[k]))
        if spread[k, band] <= params.split_std * params.dn_max and len(out) >= params.min_classes:
            continue
        shift = np.zeros(centres.shape[1])
        shift[band] = params.split_multiplier * spread[k, band]
        out[k] = centres[k] - shift
        out.append(centres[k] + shift)
    return np.array(out)


def _merge(centres: np.ndarray, counts: np.ndarray, params: FsdafParams) -> np.ndarray:
    gap = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(axis=2))
    pairs = [(gap[i, j], i, j) for i in range(len(centres)) for j in range(i + 1, len(centres))]
    gone: set[int] = set()
    merged: list[np.ndarray] = []
    for distance, i, j in sorted(pairs):
        if len(merged) >= params.merge_pairs or len(centres) - len(gone) <= params.min_classes:
            break
        if distance >= params.merge_distance * params.dn_max or i in gone or j in gone:
            continue
        total = counts[i] + counts[j]
        merged.append((centres[i] * counts[i] + centres[j] * counts[j]) / max(total, 1))
        gone |= {i, j}
    kept = [c for k, c in enumerate(centres) if k not in gone]
    return np.array(kept + merged)


def isodata_centres(pixels: np.ndarray, params: FsdafParams) -> np.ndarray:
    """``(k, band)`` class centres of ``pixels`` ``(n, band)`` (valid pixels only)."""
    samples = subsample(np.asarray(pixels, dtype=np.float64), params.isodata_sample)
    mean, std = samples.mean(axis=0), samples.std(axis=0)
    k0 = params.max_classes
    centres = mean + std * ((2 * np.arange(k0) + 1) / k0 - 1)[:, None]
    labels = np.full(len(samples), -1)
    for _ in range(params.isodata_iterations):
        new = nearest_centre(samples, centres)
        counts = np.bincount(new, minlength=len(centres))
        keep = counts >= min(params.min_pixels, counts.max())
        if not keep.all():
            centres = centres[keep]
            new = nearest_centre(samples, centres)
            counts = np.bincount(new, minlength=len(centres))
        centres = np.array([samples[new == k].mean(axis=0) for k in range(len(centres))])
        changed = np.mean(new != labels)
        labels = new
        if changed < params.change_threshold:
            break
        spread = np.array([samples[labels == k].std(axis=0) for k in range(len(centres))])
        before = len(centres)
        if before < params.max_classes:
            centres = _split(centres, spread, params)
        elif before > params.min_classes:
            centres = _merge(centres, counts, params)
        if len(centres) != before:  # new classes: the next pass counts every sample as changed
            labels = np.full(len(samples), -1)
    return centres[np.argsort(centres.sum(axis=1), kind="stable")]


def classify(fine: np.ndarray, centres: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """``(y, x)`` int16 class map: 1 + the nearest centre, 0 where not ``usable``."""
    out = np.zeros(fine.shape[1:], dtype=np.int16)
    pixels = fine[:, usable].T
    labels = np.empty(len(pixels), dtype=np.int16)
    for start in range(0, len(pixels), 65536):
        chunk = pixels[start : start + 65536]
        labels[start : start + 65536] = nearest_centre(chunk, centres) + 1
    out[usable] = labels
    return out
