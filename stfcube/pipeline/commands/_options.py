"""Checks of option values shared by the commands, run while the command line is parsed.

Each is a typer ``callback``: a bad value is a usage error (one line, exit code 2) reported
before the command creates anything.
"""

from __future__ import annotations

import typer

#: Smallest tile edge in pixels. Each tile costs a dask task, a halo read (the method's context
#: around the tile) and one stored object per date and band: below 16 px those overheads
#: outweigh the fusion work (``--tile 7`` on a 480 px image ran 13x slower and wrote 33,340
#: files).
MIN_TILE = 16

#: The help text of every ``--tile`` option (stated once, so the floor reads the same everywhere).
TILE_HELP = (
    f"Tile edge in fine pixels (= output chunk), at least {MIN_TILE}; the run's summary notes a "
    "tile below twice the method's halo (reads over 4x its pixels) or one whose inputs exceed "
    "2 GiB."
)


def check_tile(value: int) -> int:
    """A ``--tile`` of at least :data:`MIN_TILE` pixels."""
    if value < MIN_TILE:
        raise typer.BadParameter(
            f"{value} px is below the minimum of {MIN_TILE}: smaller tiles cost more in per-tile "
            "overhead (a task, a halo read, one stored object per date and band) than they compute"
        )
    return value


def check_memory_limit(value: str | None) -> str | None:
    """A ``--memory-limit`` that dask reads: ``auto`` or a positive size such as ``4GiB``."""
    if value is None or value == "auto":
        return value
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(value)
    except (ValueError, TypeError):
        size = 0
    if size <= 0:
        raise typer.BadParameter(f"{value!r} is not a memory size; use e.g. 4GiB, 500MB or auto")
    return value


def check_device(value: str) -> str:
    """A ``--device`` of ``cpu`` or ``gpu``."""
    if value not in {"cpu", "gpu"}:
        raise typer.BadParameter(f"{value!r} is not a device; use cpu or gpu")
    return value


def check_scheduler(value: str | None) -> str | None:
    """A ``--scheduler`` address dask can dial, such as ``tcp://host:8786`` (not yet dialled)."""
    if value is None:
        return value
    from distributed.comm import get_address_host_port

    try:
        get_address_host_port(value)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not a scheduler address ({exc}); use tcp://HOST:PORT"
        ) from None
    return value
