"""The rich console every command prints to."""

from __future__ import annotations

from rich.console import Console


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that wraps text only on a terminal.

    Printed to a file or a pipe, rich would wrap at 80 columns and split long paths across
    lines; there each message stays on one line instead.
    """
    out = Console(stderr=stderr)
    out.soft_wrap = not out.is_terminal
    return out
