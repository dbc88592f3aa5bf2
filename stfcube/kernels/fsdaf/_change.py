"""FSDAF's change step as NumPy array code: clipping, class fractions, unmixing, heterogeneity,
residual distribution (Zhu's IDL program, steps 2 to 6).

Conventions: images ``(band, y, x)`` float64; a *cell* label image ``(y, x)`` gives the coarse
pixel (row-major index on the coarse grid) each fine pixel belongs to; per-cell arrays are
``(band, n_cells)``. Class ``0`` is background / unclassified (no class change, no fraction).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import lsq_linear

#: Added to every residual weight, as the program does (no weight is 0).
WEIGHT_FLOOR = 1e-6


def locate_quantile(n: int, p: float) -> int:
    """The program's quantile index: IDL ``VALUE_LOCATE(FINDGEN(n + 1) / n, p)`` in float32."""
    grid = np.arange(n + 1, dtype=np.float32) / np.float32(n)
    return int(np.searchsorted(grid, np.float32(p), side="right")) - 1


def clip_bounds(
    band: np.ndarray, percentiles: tuple[float, float], dn_range: tuple[float, float]
) -> np.ndarray:
    """``(low, high, low_value, high_value)`` of the program's noise clipping of one band.

    Values ``<= low`` (the ``percentiles[0]`` quantile by :func:`locate_quantile`) or below
    ``dn_range[0]`` become ``low_value``, the smallest value above both; values ``>= high`` or
    above ``dn_range[1]`` become ``high_value``, the largest value below both. ``band`` holds the
    valid values only (1-D). A side with no value left is not clipped (its bounds are +-inf).
    """
    ordered = np.sort(band)
    n = ordered.size
    low = ordered[min(locate_quantile(n, percentiles[0]), n - 1)]
    high = ordered[min(locate_quantile(n, percentiles[1]), n - 1)]
    inside_low = band[(band > low) & (band >= dn_range[0])]
    if inside_low.size == 0:
        return np.array([-np.inf, np.inf, np.nan, np.nan])
    low_value = inside_low.min()
    # the program clips the small values first, then looks for the large ones in the result
    clipped = np.where((band <= low) | (band < dn_range[0]), low_value, band)
    inside_high = clipped[(clipped < high) & (clipped <= dn_range[1])]
    if inside_high.size == 0:
        return np.array([low, np.inf, low_value, np.nan])
    return np.array([low, high, low_value, inside_high.max()])


def apply_clip(fine: np.ndarray, bounds: np.ndarray, dn_range: tuple[float, float]) -> np.ndarray:
    """``fine`` with each band clipped by its :func:`clip_bounds` row ``bounds[band]``."""
    out = np.array(fine, dtype=np.float64)
    for b, (low, high, low_value, high_value) in enumerate(bounds):
        band = out[b]
        band[(band <= low) | (band < dn_range[0])] = low_value
        band[(band >= high) | (band > dn_range[1])] = high_value
    return out


def cell_means(values: np.ndarray, cell: np.ndarray, n_cells: int, used: np.ndarray) -> np.ndarray:
    """``(band, n_cells)`` means of ``values`` over the ``used`` fine pixels of each cell (NaN:
    none)."""
    index = cell[used]
    count = np.bincount(index, minlength=n_cells).astype(np.float64)
    sums = np.stack([np.bincount(index, band[used], minlength=n_cells) for band in values])
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / count


def class_fractions(
    classes: np.ndarray, labels: np.ndarray, cell: np.ndarray, n_cells: int, inside: np.ndarray
) -> np.ndarray:
    """``(n_cells, len(labels))`` share of each class among a cell's fine pixels ``inside``.

    A cell whose fractions sum to 0.999 or less (background or unclassified pixels inside) gets
    all fractions 0, as in the program.
    """
    index = cell[inside]
    count = np.bincount(index, minlength=n_cells).astype(np.float64)
    cls = classes[inside]
    with np.errstate(invalid="ignore", divide="ignore"):
        fractions = np.stack(
            [np.bincount(index, cls == c, minlength=n_cells) / count for c in labels], axis=1
        )
    fractions = np.nan_to_num(fractions)
    fractions[fractions.sum(axis=1) <= 0.999] = 0.0
    return fractions


def purest_samples(
    fractions: np.ndarray, change: np.ndarray, num_pure: int, percentiles: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``X`` (fractions) and targets ``y`` (coarse change) of one band's unmixing.

    Per class: the ``num_pure`` cells of highest fraction (ties: the larger cell index first,
    the program's reversed stable sort), at most the number of cells with a fraction above
    0.01; of their changes, those between the ``percentiles`` quantiles (inclusive) are kept.
    Cells with a NaN change are never selected.
    """
    rows, targets = [], []
    usable = np.isfinite(change)
    for k in range(fractions.shape[1]):
        frac = np.where(usable, fractions[:, k], -1.0)
        order = np.argsort(frac, kind="stable")[::-1]
        n_pure = min(int(np.count_nonzero(frac > 0.01)), num_pure)
        if n_pure == 0:
            continue
        picked = order[:n_pure]
        values = change[picked]
        ordered = np.sort(values, kind="stable")
        low = ordered[locate_quantile(n_pure, percentiles[0])]
        high = ordered[min(locate_quantile(n_pure, percentiles[1]), n_pure - 1)]
        keep = (values >= low) & (values <= high)
        rows.append(fractions[picked[keep]])
        targets.append(values[keep])
    if not rows:
        return np.empty((0, fractions.shape[1])), np.empty(0)
    return np.concatenate(rows), np.concatenate(targets)


def unmix(
    fractions: np.ndarray, change: np.ndarray, num_pure: int, percentiles: tuple[float, float]
) -> np.ndarray:
    """``(band, k)`` class change: box-constrained least squares without intercept, per band.

    Bounds ``[min(dC) - std(dC), max(dC) + std(dC)]`` over the valid cells (``std`` with
    ``n - 1``, IDL's ``STDDEV``); solved exactly (``scipy.optimize.lsq_linear``, BVLS), where the
    program calls IDL's iterative ``CONSTRAINED_MIN`` from ``1 / k``. A class whose column holds
    no sample keeps that start value ``1 / k`` (the program's solver never moves it); a band
    without any sample gets the mean coarse change for every class.
    """
    n_class = fractions.shape[1]
    out = np.empty((change.shape[0], n_class))
    for b, delta in enumerate(change):
        valid = delta[np.isfinite(delta)]
        spread = valid.std(ddof=1) if valid.size > 1 else 0.0
        low, high = valid.min() - spread, valid.max() + spread
        x, y = purest_samples(fractions, delta, num_pure, percentiles)
        used = np.abs(x).sum(axis=0) > 0
        out[b] = 1.0 / n_class
        if y.size == 0:
            out[b] = valid.mean()
        elif low == high:
            out[b, used] = low
        else:
            fit = lsq_linear(x[:, used], y, bounds=(low, high), method="bvls")
            out[b, used] = fit.x
    return out


def box_count(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels set in every (2 radius + 1)^2 window truncated at the array border."""
    total = np.pad(mask.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    rows, cols = mask.shape
    r0 = np.clip(np.arange(rows) - radius, 0, rows)
    r1 = np.clip(np.arange(rows) + radius + 1, 0, rows)
    c0 = np.clip(np.arange(cols) - radius, 0, cols)
    c1 = np.clip(np.arange(cols) + radius + 1, 0, cols)
    return (
        total[r1[:, None], c1[None, :]]
        - total[r0[:, None], c1[None, :]]
        - total[r1[:, None], c0[None, :]]
        + total[r0[:, None], c0[None, :]]
    )


def heterogeneity(classes: np.ndarray, radius: int) -> np.ndarray:
    """Homogeneity index: the share of same-class pixels in each pixel's (2 radius + 1)^2
    window truncated at the array border (class 0 counts as a class, as in the program)."""
    area = box_count(np.ones(classes.shape, dtype=bool), radius).astype(np.float64)
    out = np.empty(classes.shape)
    for c in np.unique(classes):
        inside = classes == c
        out[inside] = box_count(inside, radius)[inside] / area[inside]
    return out


def distribute_residual(
    tps_change: np.ndarray,
    homogeneity: np.ndarray,
    residual: np.ndarray,
    cell: np.ndarray,
    used: np.ndarray,
    weight_cap: float,
) -> np.ndarray:
    """Spread each cell's residual ``R`` over its fine pixels (step 6 of the program).

    ``E_ho = L2_TPS - L2_1`` (``tps_change``) is zeroed where its sign differs from ``R`` and
    taken absolute; weights ``E_ho * HI + |R| * (1 - HI) + 1e-6`` are normalised to mean 1 over
    the cell's ``used`` pixels, those above ``weight_cap`` replaced by the mean, normalised
    again; the result is ``weight * R`` (0 outside ``used``; a NaN ``E_ho`` counts as 0).
    """
    n_cells = residual.shape[1]
    index = cell[used]
    count = np.maximum(np.bincount(index, minlength=n_cells), 1).astype(np.float64)
    out = np.zeros(tps_change.shape)
    het = homogeneity[used]

    def normalised(weight: np.ndarray) -> np.ndarray:
        return weight / (np.bincount(index, weight, minlength=n_cells) / count)[index]

    for b in range(residual.shape[0]):
        r = residual[b][index]
        e_ho = np.nan_to_num(tps_change[b][used])
        e_ho = np.abs(np.where((r <= 0) & (e_ho > 0) | (r > 0) & (e_ho < 0), 0.0, e_ho))
        weight = normalised(e_ho * het + np.abs(r) * (1.0 - het) + WEIGHT_FLOOR)
        mean = (np.bincount(index, weight, minlength=n_cells) / count)[index]
        weight = normalised(np.where(weight > weight_cap, mean, weight))
        out[b][used] = weight * r
    return out
