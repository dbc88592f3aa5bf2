"""The progress bar the long-running commands share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn


@contextmanager
def progress_bar(
    description: str, console: Console, *, quiet: bool = False, transient: bool = False
) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on ``console``; yields the ``progress(done, total)`` callback.

    The bar appears at the first call of the callback, so a command that fails while it is
    still checking its inputs prints its error alone. ``quiet`` disables the bar (the callback
    then does nothing visible).
    """
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=transient,
    )
    task_id = bar.add_task(description, total=None)

    def progress(done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task_id, completed=done, total=total)

    try:
        yield progress
    finally:
        if bar.live.is_started:
            bar.stop()
