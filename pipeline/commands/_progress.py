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

    ``quiet`` disables the bar (the callback then does nothing visible).
    """
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=transient,
    ) as bar:
        task_id = bar.add_task(description, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task_id, completed=done, total=total)

        yield progress
