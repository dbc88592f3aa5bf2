"""``local_threads``: a flow task's own dask graphs on threads, shared by overlapping tasks."""

from __future__ import annotations

import threading

import dask.config

from stfcube.flows.runners import local_threads


def test_overlapping_blocks_keep_threads_until_the_last_one_leaves() -> None:
    before = dask.config.get("scheduler", None)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[str | None] = []

    def first() -> None:
        with local_threads():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with local_threads():
            second_in.set()
            first_out.wait(5)
            seen.append(dask.config.get("scheduler", None))  # the first block has left

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == ["threads"]
    assert dask.config.get("scheduler", None) == before
