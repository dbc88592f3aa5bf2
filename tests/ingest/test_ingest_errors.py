"""Bad inputs: one clear InputError naming the file, non-zero CLI exit, the cube left untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_ingest import (
    coarse_image,
    fine_image,
    make_site,
    write_manifest,
    write_tif,
)
from typer.testing import CliRunner

from helpers.checksums import tree_checksum
from helpers.cli import one_line, run_stfcube
from stfcube.pipeline.cli import app
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.ingest.scenes import ingest

NEW_DAY = "2021-07-01"


def _add(manifest: Path, *scenes: dict) -> Path:
    data = yaml.safe_load(manifest.read_text())
    data["scenes"] = [*data["scenes"], *scenes]
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    return manifest


def _fine(path: str, day: str = NEW_DAY) -> dict:
    return {"role": "fine", "date": day, "path": path}


def _no_crs(root: Path) -> tuple[Path, str]:
    write_tif(root / "bad.tif", coarse_image(0), res=240.0, crs=None)
    return _add(root / "manifest.yaml", {"role": "coarse", "date": NEW_DAY, "path": "bad.tif"}), (
        "has no CRS while the fine grid has one"
    )


def _other_fine_grid(root: Path) -> tuple[Path, str]:
    write_tif(root / "bad.tif", fine_image(0), origin=(500_015.0, 4_200_000.0))
    return _add(root / "manifest.yaml", _fine("bad.tif")), "fine scenes must share one grid"


def _missing(root: Path) -> tuple[Path, str]:
    return _add(root / "manifest.yaml", _fine("bad.tif")), "file not found"


def _truncated(root: Path) -> tuple[Path, str]:
    write_tif(root / "full.tif", fine_image(3))
    (root / "bad.tif").write_bytes((root / "full.tif").read_bytes()[:-3000])
    return _add(root / "manifest.yaml", _fine("bad.tif")), "truncated or corrupt"


def _garbage(root: Path) -> tuple[Path, str]:
    (root / "bad.tif").write_bytes(b"not a raster at all" * 10)
    return _add(root / "manifest.yaml", _fine("bad.tif")), "cannot be read as a raster"


def _duplicate(root: Path) -> tuple[Path, str]:
    write_tif(root / "bad.tif", fine_image(3))
    manifest = _add(root / "manifest.yaml", _fine("fine_2021-06-01.tif", NEW_DAY))
    return _add(manifest, _fine("bad.tif")), f"duplicate fine date {NEW_DAY}"


def _band_count(root: Path) -> tuple[Path, str]:
    write_tif(root / "bad.tif", fine_image(3)[:2])
    return _add(root / "manifest.yaml", _fine("bad.tif")), "2 band(s) to read where the cube has 3"


def _unknown_role(root: Path) -> tuple[Path, str]:
    write_tif(root / "bad.tif", fine_image(3))
    manifest = _add(root / "manifest.yaml", {"role": "sar", "date": NEW_DAY, "path": "bad.tif"})
    return manifest, "scenes.2.role: Input should be 'fine', 'coarse' or 'truth'"


CASES: dict[str, Callable[[Path], tuple[Path, str]]] = {
    "crs-vs-no-crs": _no_crs,
    "fine-grid-mismatch": _other_fine_grid,
    "missing-file": _missing,
    "truncated-file": _truncated,
    "unreadable-file": _garbage,
    "duplicate-date": _duplicate,
    "band-count": _band_count,
    "unknown-role": _unknown_role,
}


@pytest.fixture
def cube(tmp_path: Path) -> tuple[Path, Path]:
    """An existing cube and the site directory it came from."""
    manifest = make_site(tmp_path / "site", ["2021-06-01"], ["2021-06-01"])
    cube_path = tmp_path / "cube.zarr"
    ingest(manifest, cube_path, chunk=16)
    return cube_path, manifest.parent


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_names_the_file_and_leaves_the_cube_untouched(cube, case: str):
    cube_path, root = cube
    manifest, problem = CASES[case](root)
    before = tree_checksum(cube_path)
    with pytest.raises(InputError) as info:
        ingest(manifest, cube_path, chunk=16)
    message = str(info.value)
    assert problem in message
    named = "manifest.yaml" if case == "unknown-role" else "bad.tif"
    assert named in message
    assert tree_checksum(cube_path) == before
    result = CliRunner().invoke(app, ["ingest", str(manifest), str(cube_path)])
    assert result.exit_code != 0 and isinstance(result.exception, InputError)
    assert problem in str(result.exception)
    assert tree_checksum(cube_path) == before


def test_bad_input_leaves_no_new_cube_behind(tmp_path: Path):
    manifest = make_site(tmp_path / "site", ["2021-06-01"], [])
    _missing(manifest.parent)
    with pytest.raises(InputError, match="file not found"):
        ingest(manifest, tmp_path / "cube.zarr")
    assert list(tmp_path.iterdir()) == [tmp_path / "site"]


def test_non_integer_ratio_with_native_requested(tmp_path: Path):
    manifest = make_site(tmp_path / "site", ["2021-06-01"], [])
    coarse = np.tile(coarse_image(0), (1, 2, 2))
    write_tif(manifest.parent / "c.tif", coarse, res=225.0)  # 7.5 fine pixels
    write_manifest(
        manifest,
        [*yaml.safe_load(manifest.read_text())["scenes"], _fine("c.tif") | {"role": "coarse"}],
    )
    with pytest.raises(InputError, match=r"c\.tif: native coarse grid requested, but pixel ratio"):
        ingest(manifest, tmp_path / "cube.zarr", native=True)
    assert not (tmp_path / "cube.zarr").exists()
    report = ingest(manifest, tmp_path / "cube.zarr", native=False)
    assert not report.coarse_native


def test_grid_mismatch_with_existing_cube(cube):
    cube_path, root = cube
    other = make_site(root.parent / "other", ["2021-06-20"], [], size=48)
    before = tree_checksum(cube_path)
    with pytest.raises(InputError, match=r"fine_2021-06-20\.tif: grid 48x48 .* differs"):
        ingest(other, cube_path)
    assert tree_checksum(cube_path) == before


def test_cli_exit_code_and_message(cube):
    cube_path, root = cube
    manifest, problem = _missing(root)
    result = run_stfcube("ingest", manifest, cube_path)
    assert result.returncode == 2
    message = one_line(result.stderr)
    assert "bad.tif: file not found" in message and problem in message
