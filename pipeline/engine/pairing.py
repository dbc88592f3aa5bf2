"""Prediction planning: which input pairs serve which prediction dates.

A *pair* is a date with both a fine and a coarse image whose fine image is valid enough (a
mostly cloudy fine scene is skipped). For each prediction date a rule picks the pairs; dates
that share the same pairs form a :class:`PairGroup`, so the pairs' data and global statistics
are read and computed once per group.

Rules (``pairs=``):

- ``"nearest"`` (default): the nearest pair before and the nearest pair after the date (one of
  them where the other side has none).
- ``"before"`` / ``"after"``: the nearest pair strictly before / after the date.
- an integer ``N`` (or its text): the N pairs nearest in time (ties go to the earlier date).

A prediction date never uses itself as a pair, so predicting a pair date is a genuine
leave-one-out prediction that can be checked against the real fine image.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class PairGroup:
    """Prediction dates that share one set of input pairs (all dates as ``datetime64[D]``)."""

    pair_dates: tuple[np.datetime64, ...]
    predict_dates: tuple[np.datetime64, ...]


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
        by_distance = sorted(others, key=lambda d: (abs(int((d - target).astype(int))), d))
        chosen = by_distance[: int(rule)]
    return tuple(sorted(chosen))


def plan_groups(
    targets: Sequence[np.datetime64],
    pair_dates: Collection[np.datetime64],
    rule: str | int,
    max_pairs: int,
    min_pairs: int = 1,
) -> list[PairGroup]:
    """Group prediction ``targets`` by the pairs ``rule`` picks for them.

    Raises
    ------
    ConfigError
        Naming the first date with fewer usable pairs than the method needs (``min_pairs``),
        or when the rule asks for more pairs than the method takes (``max_pairs``).
    """
    rule = parse_rule(rule)
    if isinstance(rule, int) and rule > max_pairs:
        raise ConfigError(f"the method takes at most {max_pairs} pairs; the rule asks for {rule}")
    groups: dict[tuple[np.datetime64, ...], list[np.datetime64]] = {}
    for target in sorted(targets):
        chosen = select_pairs(target, pair_dates, rule)
        if len(chosen) < min_pairs:
            usable = ", ".join(str(np.datetime64(d, "D")) for d in sorted(pair_dates)) or "none"
            found = f"only {len(chosen)} usable pair(s)" if chosen else "no usable pair"
            raise ConfigError(
                f"{found} for {np.datetime64(target, 'D')} with rule {rule!r}; the method needs "
                f"{min_pairs} (usable pair dates: {usable})"
            )
        groups.setdefault(chosen, []).append(target)
    return [PairGroup(pairs, tuple(dates)) for pairs, dates in sorted(groups.items())]
