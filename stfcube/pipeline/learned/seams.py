"""The seam error of GAN-STFM's ``window`` inference: the prediction's error next to the edges
of its windows against the error elsewhere (``stfcube`` tests and ``bench learned``).

The windows lie on a grid fixed to the image
(:func:`stfcube.kernels.learned.ganstfm.window_starts`); a window edge inside the image is where
one window's statistics give way to another's. A seam shows as a larger error within a few
pixels of those edges than away from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeamError:
    """RMSE within ``width`` pixels of a window edge (``border``) and elsewhere (``inside``)."""

    border: float
    inside: float
    width: int

    @property
    def ratio(self) -> float:
        """``border / inside`` (1: no seam)."""
        return self.border / self.inside


def window_edges(size: int, window: int, overlap: int) -> list[int]:
    """Positions along an axis of ``size`` pixels where a window starts or ends inside the
    image."""
    from stfcube.kernels.learned.ganstfm import window_starts

    starts = window_starts(size, window, overlap)
    edges = {s for s in starts if s > 0} | {s + window for s in starts if s + window < size}
    return sorted(edges)


def border_mask(shape: tuple[int, int], window: int, overlap: int, width: int) -> np.ndarray:
    """``(y, x)`` True within ``width`` pixels of a window edge."""
    mask = np.zeros(shape, dtype=bool)
    for axis, size in enumerate(shape):
        for edge in window_edges(size, window, overlap):
            near = slice(max(0, edge - width), min(size, edge + width))
            mask[(near, slice(None)) if axis == 0 else (slice(None), near)] = True
    return mask


def seam_error(
    prediction: np.ndarray,
    truth: np.ndarray,
    valid: np.ndarray,
    window: int,
    overlap: int,
    width: int = 2,
) -> SeamError:
    """The RMSE of ``prediction`` against ``truth`` (``(..., y, x)``, every band and date) over
    the ``valid`` pixels near window edges and elsewhere.

    Raises
    ------
    ValueError
        When the image has no window edge (one window covers it) or no valid pixel on a side.
    """
    border = border_mask(prediction.shape[-2:], window, overlap, width)
    if not border.any():
        raise ValueError("the image is a single window: no seam to measure")
    ok = valid & np.isfinite(prediction) & np.isfinite(truth)
    squared = (prediction - truth) ** 2
    near, far = ok & border, ok & ~border
    if not near.any() or not far.any():
        raise ValueError("no valid pixel near a window edge, or none away from them")
    return SeamError(
        float(np.sqrt(squared[near].mean())), float(np.sqrt(squared[far].mean())), width
    )
