"""The progress bar the long-running commands share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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


@contextmanager
def dask_progress(description: str, console: Console, *, quiet: bool = False) -> Iterator[None]:
    """A progress bar over the dask tasks computed inside the block (local schedulers only).

    Every computation started in the block adds its tasks to the bar's total, so a command that
    computes in several steps (write the cube, then its valid shares) shows one bar over all of
    them. The bar appears when the first computation starts: input checks print alone.
    """
    from dask.callbacks import Callback  # dask loads only once the command runs

    with progress_bar(description, console, quiet=quiet) as progress:
        counts = {"done": 0, "total": 0}

        def start_state(graph: Any, state: Any) -> None:
            counts["total"] += len(graph) - len(state["cache"])  # data, not tasks to run
            progress(counts["done"], counts["total"])

        def posttask(*_: Any) -> None:
            counts["done"] += 1
            progress(counts["done"], counts["total"])

        with Callback(start_state=start_state, posttask=posttask):
            yield
