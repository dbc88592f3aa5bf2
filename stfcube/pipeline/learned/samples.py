"""Training data from a cube: its usable pairs in memory, a held-out split, random patches.

A pair is a date whose fine and coarse images both have at least ``min_valid`` valid pixels.
Targets are drawn from the training dates; references from every other pair (held-out dates may
serve as references, never as targets), preferring the nearest in time. GAN-STFM's reference
is any fine image with ``min_valid`` valid pixels, with or without a coarse image, drawn at
random (the target's own included, as its authors do). Patches are random squares (for DCSTFN
aligned to the native coarse grid) with a random rotation / flip applied to every image of a
sample alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stfcube.pipeline.errors import InputError
from stfcube.pipeline.learned.modeldir import SCALE, cube_ratio


@dataclass(frozen=True)
class Site:
    """A cube's usable pairs in memory: scaled data ``(t, band, y, x)`` (0 where invalid is not
    guaranteed: masks say), masks ``(t, y, x)``; ``native`` the native-grid coarse images cut to
    whole coarse pixels inside the image (``row0``/``col0``: fine position of their corner);
    ``paired``: the dates that are pairs (all, unless fine images without a coarse one were
    loaded as references)."""

    dates: tuple[np.datetime64, ...]
    fine: np.ndarray
    fine_valid: np.ndarray
    coarse: np.ndarray
    coarse_valid: np.ndarray
    ratio: int | None
    native: np.ndarray | None = None
    native_valid: np.ndarray | None = None
    native_row0: int = 0
    native_col0: int = 0
    paired: tuple[int, ...] = ()


def load_site(
    cube_path: Path, cube: Any, *, min_valid: float, native: bool, fine_only: bool = False
) -> Site:
    """Read every usable pair of ``cube`` (opened from ``cube_path``), and with ``fine_only``
    every fine image with ``min_valid`` valid pixels besides (references).

    Raises
    ------
    InputError
        With fewer than 2 usable pairs, or ``native`` without a native coarse grid.
    """
    fine_share = cube["fine_valid"].mean(("y", "x")).values
    coarse_share = cube["coarse_valid"].mean(("y", "x")).values
    is_pair = (fine_share >= min_valid) & (coarse_share >= min_valid)
    if is_pair.sum() < 2:
        raise InputError(
            cube_path,
            f"{is_pair.sum()} usable fine+coarse pair(s) (at least {min_valid:.0%} valid pixels "
            "in both images); training needs at least 2",
        )
    usable = np.flatnonzero((fine_share >= min_valid) if fine_only else is_pair)
    if native and "coarse_native" not in cube:
        raise InputError(cube_path, "DCSTFN reads the native coarse grid, which this cube lacks")
    pick = cube.isel(time=usable)

    def values(name: str) -> np.ndarray:
        return np.asarray(pick[name].values)

    site = Site(
        dates=tuple(pick["time"].values),
        fine=(values("fine") * SCALE).astype(np.float32),
        fine_valid=values("fine_valid").astype(bool),
        coarse=(values("coarse") * SCALE).astype(np.float32),
        coarse_valid=values("coarse_valid").astype(bool),
        ratio=cube_ratio(cube),
        paired=tuple(int(k) for k in np.flatnonzero(is_pair[usable])),
    )
    if not native:
        return site
    from stfcube.pipeline.engine.tasks import native_grid

    grid = native_grid(cube)
    assert grid is not None
    rows = _inside(grid.row0, grid.ratio, grid.shape[0], site.fine.shape[-2])
    cols = _inside(grid.col0, grid.ratio, grid.shape[1], site.fine.shape[-1])
    return dataclasses.replace(
        site,
        native=(values("coarse_native")[..., rows, cols] * SCALE).astype(np.float32),
        native_valid=values("coarse_native_valid")[..., rows, cols].astype(bool),
        native_row0=grid.row0 + rows.start * grid.ratio,
        native_col0=grid.col0 + cols.start * grid.ratio,
    )


def _inside(start: int, ratio: int, count: int, size: int) -> slice:
    """Native pixels whose whole block of fine pixels lies inside ``size`` fine pixels."""
    first = max(0, -(start // ratio))
    last = min(count, (size - start) // ratio)
    if last <= first:
        raise ValueError("the native grid has no whole coarse pixel inside the image")
    return slice(first, last)


def split_dates(n: int, fraction: float) -> tuple[list[int], list[int]]:
    """Training and held-out indices of ``n`` pairs: about ``fraction`` of them (at least one,
    at most ``n - 1``), spread evenly over the series."""
    n_val = min(n - 1, max(1, round(fraction * n)))
    held = sorted({min(n - 1, round((k + 1) * n / (n_val + 1))) for k in range(n_val)})
    return [i for i in range(n) if i not in held], held


def nearest(dates: Sequence[np.datetime64], target: int, among: Sequence[int], k: int) -> list[int]:
    """The ``k`` dates of ``among`` (other than ``target``) nearest in time to ``target``."""
    others = [i for i in among if i != target]
    distance = [abs(int((dates[i] - dates[target]) / np.timedelta64(1, "D"))) for i in others]
    return [others[j] for j in np.argsort(distance, kind="stable")[:k]]


def _augment(array: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    out = np.rot90(array, turns, axes=(-2, -1))
    return np.ascontiguousarray(out[..., ::-1] if flip else out)


class PatchSampler:
    """Random training batches (NumPy, seeded by the caller's generator).

    Parameters
    ----------
    site
        The pairs.
    train
        Indices of the training (target) dates.
    model
        ``edcstfn``, ``dcstfn``, ``stfdcnn`` or ``ganstfm``.
    patch
        Patch edge in fine pixels (DCSTFN: a multiple of the ratio).
    pairs
        References per sample (2: EDCSTFN's two-pair training).
    """

    def __init__(self, site: Site, train: Sequence[int], model: str, patch: int, pairs: int):
        self.site, self.train, self.model, self.patch, self.pairs = (
            site,
            list(train),
            model,
            patch,
            pairs,
        )
        rows, cols = site.fine.shape[-2:]
        if patch > min(rows, cols):
            raise ValueError(f"patch {patch} exceeds the {rows} x {cols} image")
        if model == "dcstfn":
            assert site.native is not None and site.ratio is not None
            if patch % site.ratio:
                raise ValueError(f"DCSTFN patches must be a multiple of the ratio {site.ratio}")

    def _origin(self, rng: np.random.Generator) -> tuple[int, int]:
        site, rows, cols = self.site, *self.site.fine.shape[-2:]
        if self.model != "dcstfn":
            return int(rng.integers(0, rows - self.patch + 1)), int(
                rng.integers(0, cols - self.patch + 1)
            )
        assert site.native is not None and site.ratio is not None
        span = self.patch // site.ratio
        i = int(rng.integers(0, site.native.shape[-2] - span + 1))
        j = int(rng.integers(0, site.native.shape[-1] - span + 1))
        return site.native_row0 + i * site.ratio, site.native_col0 + j * site.ratio

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One sample: ``target``/``target_valid``, ``coarse_pred``(+``_valid``) and, per
        reference ``k``, ``fine{k}``, ``coarse{k}`` with masks (DCSTFN: coarse on the native
        grid)."""
        site = self.site
        target = int(rng.choice(self.train))
        if self.model == "ganstfm":
            refs = [int(rng.integers(0, len(site.dates)))]
        else:
            candidates = nearest(site.dates, target, site.paired, self.pairs + 1)
            refs = [int(i) for i in rng.permutation(candidates)[: self.pairs]]
        r0, c0 = self._origin(rng)
        fine = (slice(r0, r0 + self.patch), slice(c0, c0 + self.patch))
        out = {
            "target": site.fine[(target, slice(None), *fine)],
            "target_valid": site.fine_valid[(target, *fine)],
        }
        coarse, coarse_valid, window = site.coarse, site.coarse_valid, fine
        if self.model == "dcstfn":
            assert site.native is not None and site.native_valid is not None and site.ratio
            i0, j0 = (r0 - site.native_row0) // site.ratio, (c0 - site.native_col0) // site.ratio
            span = self.patch // site.ratio
            coarse, coarse_valid = site.native, site.native_valid
            window = (slice(i0, i0 + span), slice(j0, j0 + span))
        out["coarse_pred"] = coarse[(target, slice(None), *window)]
        out["coarse_pred_valid"] = coarse_valid[(target, *window)]
        for k, ref in enumerate(refs):
            out[f"fine{k}"] = site.fine[(ref, slice(None), *fine)]
            out[f"fine{k}_valid"] = site.fine_valid[(ref, *fine)]
            out[f"coarse{k}"] = coarse[(ref, slice(None), *window)]
            out[f"coarse{k}_valid"] = coarse_valid[(ref, *window)]
        turns, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
        return {key: _augment(value, turns, flip) for key, value in out.items()}

    def batch(self, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
        """``size`` samples stacked on a new first axis."""
        samples = [self.sample(rng) for _ in range(size)]
        return {key: np.stack([s[key] for s in samples]) for key in samples[0]}
