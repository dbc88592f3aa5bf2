"""One writer per output store: a lock file beside the store, with its holder's host and pid.

Two ``fuse`` runs into one store at once would interleave their writes (and each would clear or
set the other's completion markers). :func:`store_lock` lets the first run hold the store and
refuses the second with a message naming the holder. The lock is a hidden sibling file
(``.STORE.stfcube-lock``, so it can be taken before the store exists) created atomically with
its content (a hard link of a written draft). Stale-lock rule: a lock left by a process of this
host that no longer runs (killed, crashed) is taken over; a lock held by another host is
honoured, and the message says which file to delete if that run is known to be gone.

Inside a run, the tasks that share a shard of a large fused store
(:mod:`stfcube.pipeline.store.layout`)
take turns with :func:`shard_lock`: a short-lived lock file per shard, created the same atomic way,
so it holds across threads, processes and hosts sharing the store's file system.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from stfcube.pipeline.errors import OutputError


def lock_path(store: str | Path) -> Path:
    """The lock file of ``store``."""
    store = Path(store)
    return store.with_name(f".{store.name}.stfcube-lock")


@contextmanager
def store_lock(store: str | Path, purpose: str = "fuse") -> Iterator[None]:
    """Hold ``store`` for one writing run.

    Parameters
    ----------
    store
        The store the run writes (it may not exist yet; its parent must).
    purpose
        What the run does, recorded in the lock for the message a second run gets.

    Raises
    ------
    OutputError
        When another live run holds the store.
    """
    path = lock_path(store)
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "purpose": purpose,
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _acquire(Path(store), path, holder)
    try:
        yield
    finally:
        if _read(path) == holder:
            path.unlink(missing_ok=True)


#: Seconds between two attempts to take a shard lock, and the longest wait before giving up.
SHARD_LOCK_POLL = 0.01
SHARD_LOCK_TIMEOUT = 600.0


def shard_lock_folder(store: str | Path) -> Path:
    """The folder of ``store``'s shard locks (a hidden sibling, never inside the store)."""
    store = Path(store)
    return store.with_name(f".{store.name}.stfcube-shard-locks")


@contextmanager
def shard_lock(store: str | Path, key: str) -> Iterator[None]:
    """Hold one shard of ``store`` (``key``: array and shard index) while writing it.

    Waits while another live writer holds it; a lock left by a dead process of this host is
    taken over.

    Raises
    ------
    OutputError
        When the shard stays held for :data:`SHARD_LOCK_TIMEOUT` seconds (a writer on another
        host that died: the message names the lock file to delete).
    """
    folder = shard_lock_folder(store)
    folder.mkdir(exist_ok=True)
    path = folder / key
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "thread": threading.get_ident()}
    draft = folder / f"{key}.{os.getpid()}.{threading.get_ident()}.draft"
    draft.write_text(json.dumps(holder))
    deadline = time.monotonic() + SHARD_LOCK_TIMEOUT
    try:
        while not _try_link(draft, path):
            other = _read(path)
            if other is not None and _is_stale(other):
                path.unlink(missing_ok=True)
            elif time.monotonic() > deadline:
                raise OutputError(
                    f"{store}: shard lock {path} held for {SHARD_LOCK_TIMEOUT:.0f} s by "
                    f"{other}; if that run is gone, delete the file"
                )
            else:
                time.sleep(SHARD_LOCK_POLL)
    finally:
        draft.unlink(missing_ok=True)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _try_link(draft: Path, path: Path) -> bool:
    try:
        os.link(draft, path)
    except FileExistsError:
        return False
    return True


def _acquire(store: Path, path: Path, holder: dict) -> None:
    """Create the lock with its content in one step: a linked temporary file (never empty)."""
    if not path.parent.is_dir():
        raise OutputError(f"{store}: its parent directory does not exist")
    draft = path.with_name(f"{path.name}.{os.getpid()}.draft")
    draft.write_text(json.dumps(holder))
    try:
        for _ in range(2):
            try:
                os.link(draft, path)
                return
            except FileExistsError:
                other = _read(path)
                if other is not None and not _is_stale(other):
                    raise OutputError(
                        f"{store}: another stfcube {other.get('purpose', 'run')} is writing it "
                        f"(pid {other.get('pid')} on {other.get('host')} since "
                        f"{other.get('since')}); wait for it to finish, or, if that run is gone, "
                        f"delete {path}"
                    ) from None
                path.unlink(missing_ok=True)  # stale: its process is gone
        raise OutputError(f"{store}: could not take the lock {path}; another run keeps taking it")
    finally:
        draft.unlink(missing_ok=True)


def _read(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _is_stale(holder: dict) -> bool:
    """A lock of this host whose process is gone (other hosts' locks are never judged stale)."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return True
    if not psutil.pid_exists(pid):
        return True
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
