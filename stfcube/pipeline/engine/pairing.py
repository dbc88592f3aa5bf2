"""Prediction planning: which input pairs serve which prediction dates.

A *pair* is a fine image that is valid enough (a mostly cloudy fine scene is skipped), with the
coarse image of the same date, or of the nearest coarse date within a tolerance (coarse
composites, MODIS 8/16-day, rarely share a day with a fine scene: :func:`match_coarse`). Methods
that use the fine image alone need no coarse image for a pair. For each prediction date a rule
picks the pairs; dates that share the same pairs form a :class:`PairGroup`, so the pairs' data and
global statistics are read and computed once per group.

Rules (``pairs=``):

- ``"nearest"`` (default): the nearest pair before and the nearest pair after the date (one of
  them where the other side has none).
- ``"before"`` / ``"after"``: the nearest pair strictly before / after the date.
- an integer ``N`` (or its text): the N pairs nearest in time (ties go to the earlier date).

A prediction date never uses itself as a pair, so predicting a pair date is a genuine
leave-one-out prediction that can be checked against the real fine image. A date for which the
rule finds fewer pairs than the method needs is skipped with its reason (:func:`plan_groups`),
never fatal for the other dates.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stfcube.pipeline.errors import ConfigError


@dataclass(frozen=True)
class PairGroup:
    """Prediction dates that share one set of input pairs (all dates as ``datetime64``).

    ``pair_dates`` are the pairs' fine dates; ``coarse_dates`` the coarse date each pair uses
    (the same day unless a tolerance matched a composite or a nearby day).
    """

    pair_dates: tuple[np.datetime64, ...]
    predict_dates: tuple[np.datetime64, ...]
    coarse_dates: tuple[np.datetime64, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.coarse_dates:
            object.__setattr__(self, "coarse_dates", self.pair_dates)
        if len(self.coarse_dates) != len(self.pair_dates):
            raise ValueError("one coarse date per pair")

    def predicting(self, dates: Sequence[np.datetime64]) -> PairGroup:
        """The same pairs predicting ``dates`` (some of this group's dates: a batch or a run)."""
        return PairGroup(self.pair_dates, tuple(dates), self.coarse_dates)


def parse_rule(rule: str | int) -> str | int:
    """Normalise a pair rule: ``"nearest"``, ``"before"``, ``"after"`` or a positive int."""
    if isinstance(rule, int) or (isinstance(rule, str) and rule.isdigit()):
        count = int(rule)
        if count < 1:
            raise ConfigError(f"pair count must be at least 1, got {count}")
        return count
    if rule in {"nearest", "before", "after"}:
        return rule
    raise ConfigError(f"unknown pair rule {rule!r}; use nearest, before, after or a number")


def _days(a: Any, b: Any) -> int:
    """Whole days from ``b`` to ``a`` (any datetime64 resolution)."""
    return int(np.datetime64(a, "D").astype(np.int64) - np.datetime64(b, "D").astype(np.int64))


def match_coarse(
    fine_dates: Collection[np.datetime64],
    coarse_dates: Collection[np.datetime64],
    tolerance_days: int = 0,
    composite_days: int | None = None,
) -> dict[np.datetime64, np.datetime64]:
    """The coarse date paired with each fine date, where there is one.

    Parameters
    ----------
    fine_dates, coarse_dates
        Dates with a fine image, and with a coarse image.
    tolerance_days
        Largest distance, in days, between a fine date and the coarse date it pairs with; the
        nearest wins (the same day first, ties go to the earlier coarse date).
    composite_days
        When the coarse images are composites dated by their first day and covering this many
        days, the composite whose period holds the fine date wins (distance 0).

    Returns
    -------
    dict
        Fine date -> coarse date, for the fine dates that have a match.
    """
    if tolerance_days < 0:
        raise ConfigError(f"pair tolerance must be >= 0 days, got {tolerance_days}")
    coarse = sorted(coarse_dates)
    matched = {}
    for fine in fine_dates:

        def distance(c: np.datetime64, fine: np.datetime64 = fine) -> int:
            offset = _days(fine, c)
            if composite_days and 0 <= offset < composite_days:
                return 0
            return abs(offset)

        candidates = [(distance(c), c) for c in coarse if distance(c) <= tolerance_days]
        if candidates:
            matched[fine] = min(candidates)[1]
    return matched


def select_pairs(
    target: np.datetime64, pair_dates: Collection[np.datetime64], rule: str | int
) -> tuple[np.datetime64, ...]:
    """The pair dates that ``rule`` picks for ``target`` (sorted; empty when none qualifies)."""
    others = sorted(d for d in pair_dates if d != target)
    before = [d for d in others if d < target]
    after = [d for d in others if d > target]
    if rule == "before":
        chosen = before[-1:]
    elif rule == "after":
        chosen = after[:1]
    elif rule == "nearest":
        chosen = before[-1:] + after[:1]
    else:
        by_distance = sorted(others, key=lambda d: (abs(_days(d, target)), d))
        chosen = by_distance[: int(rule)]
    return tuple(sorted(chosen))


def plan_groups(
    targets: Sequence[np.datetime64],
    pair_dates: Collection[np.datetime64],
    rule: str | int,
    max_pairs: int | None,
    min_pairs: int = 1,
    coarse_of: Mapping[np.datetime64, np.datetime64] | None = None,
) -> tuple[list[PairGroup], dict[np.datetime64, str]]:
    """Group prediction ``targets`` by the pairs ``rule`` picks for them.

    Parameters
    ----------
    targets, pair_dates
        Prediction dates, and the fine dates of the usable pairs.
    rule
        See the module docstring.
    max_pairs, min_pairs
        The method's bounds on pairs per prediction (``max_pairs=None``: no bound).
    coarse_of
        The coarse date of each pair (default: the pair's own date).

    Returns
    -------
    groups : list of PairGroup
        Sorted by pairs.
    skipped : dict
        Date -> why it cannot be predicted (fewer usable pairs than ``min_pairs``).

    Raises
    ------
    ConfigError
        When the rule asks for more pairs than the method takes.
    """
    rule = parse_rule(rule)
    if isinstance(rule, int) and max_pairs is not None and rule > max_pairs:
        raise ConfigError(f"the method takes at most {max_pairs} pairs; the rule asks for {rule}")
    coarse_of = dict(coarse_of or {d: d for d in pair_dates})
    groups: dict[tuple[np.datetime64, ...], list[np.datetime64]] = {}
    skipped: dict[np.datetime64, str] = {}
    for target in sorted(targets):
        chosen = select_pairs(target, pair_dates, rule)
        if len(chosen) < min_pairs:
            found = f"only {len(chosen)} usable pair(s)" if chosen else "no usable pair"
            skipped[target] = f"{found} with rule {rule!r}; the method needs {min_pairs}"
            continue
        groups.setdefault(chosen, []).append(target)
    planned = [
        PairGroup(pairs, tuple(dates), tuple(coarse_of[p] for p in pairs))
        for pairs, dates in sorted(groups.items())
    ]
    return planned, skipped
