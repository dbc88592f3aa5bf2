"""An undo journal for writes into an existing Zarr v3 store: a failed or killed write leaves no
trace.

Appending dates to a cube (or rewriting one in place) touches many files: the metadata of every
array that has a ``time`` dimension (its shape grows), the last chunk of each 1-D per-date
coordinate, and the data chunks of the new dates. A failure half-way would leave the new dates in
``time`` without their data (phantom dates that later runs would read as empty images).

:func:`journaled_write` makes such a write all-or-nothing. Before it starts, it records in a
hidden sibling folder ``.STORE.stfcube-journal`` hard links to every file the write may replace
(zarr writes each file to a temporary name and renames it over the old one, so the link keeps
the old bytes at no cost), the time positions written and the store's top-level nodes. The
journal is published by an atomic rename, and removed when the write succeeds. If the write
raises, or the process is killed, :func:`roll_back` (run at once on an exception, else by the
next writer that opens the store) deletes what the write added and restores the linked files,
so the store is byte-for-byte as it was. A reader that finds a journal refuses the store instead
of reading a half-written date.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stfcube.pipeline.errors import OutputError

_RECORD = "journal.json"
_FILES = "files"


def journal_path(store: str | Path) -> Path:
    """The journal of ``store``: a hidden sibling (same file system, so hard links work; outside
    the store, so Zarr never lists it)."""
    store = Path(store)
    return store.with_name(f".{store.name}.stfcube-journal")


def has_journal(store: str | Path) -> bool:
    """True when an interrupted write left its journal beside ``store``."""
    return (journal_path(store) / _RECORD).is_file()


@contextmanager
def journaled_write(store: str | Path, positions: Iterable[int]) -> Iterator[None]:
    """Run the block's write into ``store`` all-or-nothing.

    Parameters
    ----------
    store
        An existing Zarr v3 store (local folder).
    positions
        Indices along ``time`` the write fills: the new indices of an append, or the indices of
        dates rewritten in place.

    Raises
    ------
    OutputError
        When the store already holds a journal (roll it back first with :func:`roll_back`).
    """
    store = Path(store)
    if has_journal(store):
        raise OutputError(f"{store}: an earlier write was interrupted; roll it back first")
    _remove_stale_drafts(store)
    _write_journal(store, sorted(set(int(p) for p in positions)))
    try:
        yield
    except BaseException:
        roll_back(store)
        raise
    _discard(journal_path(store))


def roll_back(store: str | Path) -> bool:
    """Undo the write recorded in ``store``'s journal; return whether there was one.

    Deletes the chunks the write added, restores every file it replaced (hard links made before
    the write) and the metadata of every node, removes nodes it created, then the journal.
    """
    store = Path(store)
    _remove_stale_drafts(store)
    journal = journal_path(store)
    if not has_journal(store):
        return False
    record = json.loads((journal / _RECORD).read_text())
    for name, indices in record["chunks"].items():
        for index in indices:
            _discard(store / name / "c" / str(index))
    kept = set(record["nodes"])
    for entry in store.iterdir():
        if entry.is_dir() and entry.name not in kept and (entry / "zarr.json").is_file():
            _discard(entry)
    # files zarr was writing when the process was killed (metadata, and 1-D chunks ``c/<i>``;
    # deeper chunks of the written positions went with their folders above)
    for pattern in ("*.partial", "*/*.partial", "*/c/*.partial"):
        for partial in store.glob(pattern):
            partial.unlink()
    backup = journal / _FILES
    for source in sorted(backup.rglob("*")):
        if source.is_file():
            target = store / source.relative_to(backup)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    _discard(journal)
    return True


def _write_journal(store: Path, positions: list[int]) -> None:
    """Link the files the write may replace and publish the record (atomic rename)."""
    draft = journal_path(store).with_name(
        f"{journal_path(store).name}.draft-{uuid.uuid4().hex[:8]}"
    )
    backup = draft / _FILES
    chunks: dict[str, list[int]] = {}
    nodes = []
    for node in sorted(store.iterdir()):
        meta = node / "zarr.json"
        if not (node.is_dir() and meta.is_file()):
            continue
        nodes.append(node.name)
        _link(meta, backup / node.name / "zarr.json")
        time_chunk = _time_chunk(json.loads(meta.read_text()))
        if time_chunk is None or not positions:
            continue
        indices = sorted({p // time_chunk for p in positions})
        chunks[node.name] = indices
        for index in indices:
            _link_tree(node / "c" / str(index), backup / node.name / "c" / str(index))
    _link(store / "zarr.json", backup / "zarr.json")
    record = {"positions": positions, "chunks": chunks, "nodes": nodes}
    (draft / _RECORD).write_text(json.dumps(record))
    draft.rename(journal_path(store))


def _time_chunk(meta: dict[str, Any]) -> int | None:
    """The chunk length along ``time`` of an array whose first dimension is ``time``."""
    if meta.get("node_type") != "array" or (meta.get("dimension_names") or [None])[0] != "time":
        return None
    encoding = meta.get("chunk_key_encoding", {})
    separator = encoding.get("configuration", {}).get("separator", "/")
    if encoding.get("name", "default") != "default" or separator != "/":
        raise OutputError(f"unsupported chunk key encoding {encoding} (stfcube writes the default)")
    return int(meta["chunk_grid"]["configuration"]["chunk_shape"][0])


def _link(source: Path, target: Path) -> None:
    if source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link a chunk file, or every file below a chunk folder, keeping relative paths."""
    if source.is_file():
        _link(source, target)
    elif source.is_dir():
        for path in source.rglob("*"):
            if path.is_file() and not path.name.endswith(".partial"):
                _link(path, target / path.relative_to(source))


def _discard(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _remove_stale_drafts(store: Path) -> None:
    """Drafts of journals never published: the write they guarded never started."""
    for draft in store.parent.glob(f"{journal_path(store).name}.draft-*"):
        _discard(draft)
