"""Publishing and replacing what stfcube writes: the one owner of "stage, then rename".

Every product stfcube writes as a folder (a cube, a fused store, a simulated site, an evaluation
report) is built in a hidden temporary sibling and renamed into place only when complete, so a
half-written product never appears under its name. Replacing a product (``--overwrite``) goes
through :func:`remove_product`, which deletes a folder only when stfcube wrote it (its marker says
which kind of product it is) and it neither is, holds nor lies inside one of the run's inputs:
stfcube never deletes a user's folder or its own input.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from stfcube.pipeline.errors import OutputError

#: The products stfcube writes, by kind: a cube or fused store (Zarr, with ``stfcube_schema``),
#: a simulated site (``site.json``), an evaluation or comparison report and an export (COGs and
#: STAC; each has its marker file).
PRODUCT_KINDS = ("cube", "fused", "site", "report", "export")

#: The file that marks an evaluation or comparison report folder as stfcube's.
REPORT_MARKER = ".stfcube-report"
#: The file that marks an export folder as stfcube's: a JSON list of the files it wrote there.
EXPORT_MARKER = ".stfcube-export"


def staging_path(target: Path) -> Path:
    """A fresh hidden sibling of ``target`` (not created) to build it in."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def staged(target: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Build ``target`` in a hidden sibling and rename it into place when the block succeeds.

    Parameters
    ----------
    target
        The folder to publish. Its parent must exist.
    replace
        Replace an existing ``target`` (the caller has checked it may, see
        :func:`check_replaceable`): the old folder is renamed aside first, then deleted, so the
        name never points at a half-deleted folder.

    Yields
    ------
    Path
        The staging folder (not yet created: the writer creates it). It is removed if the block
        raises; ``target`` is then untouched.

    Raises
    ------
    OutputError
        When ``target`` exists and ``replace`` is false, or its parent folder does not exist.
    """
    target = Path(target)
    if not target.parent.is_dir():
        raise OutputError(f"{target}: its parent directory does not exist")
    staging = staging_path(target)
    try:
        yield staging
        if target.exists():
            if not replace:
                raise OutputError(f"{target}: already exists")
            _retire(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def product_kind(path: str | Path) -> str | None:
    """Which stfcube product the folder ``path`` holds (one of :data:`PRODUCT_KINDS`), or None."""
    path = Path(path)
    if not path.is_dir():
        return None
    try:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        attrs = {}
    schema = str(attrs.get("stfcube_schema", ""))
    if schema.startswith(("cube/", "fused/")):
        return schema.split("/")[0]
    try:
        if "stfcube_site" in json.loads((path / "site.json").read_text()):
            return "site"
    except (OSError, ValueError, TypeError):
        pass
    if (path / REPORT_MARKER).is_file() or (
        (path / "metrics.json").is_file() and (path / "report.md").is_file()
    ):
        return "report"
    if (path / EXPORT_MARKER).is_file():
        return "export"
    return None


def check_disjoint(
    out: str | Path, inputs: Sequence[str | Path], *, inside_ok: bool = False
) -> None:
    """Refuse an output path that is, holds or lies inside one of the run's ``inputs``.

    ``inside_ok``: an output inside an input folder is allowed (a report written into a site
    folder); it still may not be or hold an input, which replacing it would delete.

    Raises
    ------
    OutputError
        Naming both paths.
    """
    target = Path(out).resolve()
    for source in inputs:
        origin = Path(source).resolve()
        if target == origin:
            where = "is the input"
        elif origin.is_relative_to(target):
            where = "holds the input"
        elif target.is_relative_to(origin) and not inside_ok:
            where = "lies inside the input"
        else:
            continue
        raise OutputError(f"{out}: the output {where} {source}; choose another output path")


def check_replaceable(
    path: str | Path, kinds: Collection[str], inputs: Sequence[str | Path] = ()
) -> None:
    """Refuse to replace ``path`` unless stfcube wrote it as one of ``kinds``.

    Parameters
    ----------
    path
        The existing output folder an ``--overwrite`` would replace.
    kinds
        Product kinds this command may replace (see :data:`PRODUCT_KINDS`).
    inputs
        The run's inputs: ``path`` may not be or hold any of them.

    Raises
    ------
    OutputError
        When ``path`` is a file, a folder stfcube did not write, a product of another kind, or
        overlaps an input.
    """
    path = Path(path)
    check_disjoint(path, inputs, inside_ok=True)  # deleting it must not delete an input
    if not path.is_dir():
        raise OutputError(f"{path}: exists and is not a folder; stfcube replaces only its own")
    kind = product_kind(path)
    if kind not in kinds:
        what = f"a stfcube {kind}" if kind else "not something stfcube wrote"
        wanted = " or ".join(sorted(kinds))
        raise OutputError(
            f"{path}: exists and is {what}; --overwrite replaces only a stfcube {wanted}, "
            "never other folders: choose another output path"
        )
    foreign = _foreign_entries(path, kind)
    if foreign:
        raise OutputError(
            f"{path}: holds files stfcube did not write ({', '.join(foreign[:3])}); "
            "refusing to delete it: move them or choose another output path"
        )


def check_output_folder(
    path: str | Path,
    *,
    overwrite: bool,
    kinds: Collection[str],
    inputs: Sequence[str | Path] = (),
) -> None:
    """The rules for a command's output folder, before anything is computed.

    A missing or empty folder is fine; a non-empty one needs ``overwrite`` and must be a
    product stfcube wrote of one of ``kinds`` (:func:`check_replaceable`). The output may lie
    inside an input folder but never be or hold an input. Creates the parent folder.

    Raises
    ------
    OutputError
        Naming the folder and what to do.
    """
    path = Path(path)
    check_disjoint(path, inputs, inside_ok=True)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not overwrite:
            raise OutputError(
                f"{path}: exists and is not empty; choose another or pass --overwrite"
            )
        check_replaceable(path, kinds, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)


def remove_product(
    path: str | Path, kinds: Collection[str], inputs: Sequence[str | Path] = ()
) -> None:
    """Delete the stfcube product at ``path`` after :func:`check_replaceable` allows it."""
    check_replaceable(path, kinds, inputs)
    _retire(Path(path))


def _retire(path: Path) -> None:
    """Rename ``path`` aside (atomic), then delete it."""
    retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    retired.rmdir()
    path.rename(retired)
    shutil.rmtree(retired)


def _foreign_entries(path: Path, kind: str | None) -> list[str]:
    """Top-level entries of a Zarr product that are not Zarr nodes (stfcube keeps its lock and
    journal beside a store, never inside), or of an export that its marker does not list."""
    if kind == "export":
        try:
            written = set(json.loads((path / EXPORT_MARKER).read_text()))
        except (OSError, ValueError, TypeError):
            written = set()
        return sorted(e.name for e in path.iterdir() if e.name not in {*written, EXPORT_MARKER})
    if kind not in ("cube", "fused"):
        return []
    foreign = []
    for entry in sorted(path.iterdir()):
        if entry.name == "zarr.json":
            continue
        if entry.is_dir() and (entry / "zarr.json").is_file():
            continue
        foreign.append(entry.name)
    return foreign
