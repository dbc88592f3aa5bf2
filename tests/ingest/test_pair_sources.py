"""``fuse`` names the date, the file and the valid share of a fine image it cannot use as a pair
(issue 21); ingest records each image's source file for that. Tile sizes get notes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_ingest import make_site, write_tif

from stfcube.pipeline.cli import main
from stfcube.pipeline.engine import fuse
from stfcube.pipeline.engine.planning import tile_notes
from stfcube.pipeline.ingest import ingest
from stfcube.pipeline.store.cube import open_cube

SMALL = ["-p", "max_search_distance=60"]


@pytest.fixture
def cube(tmp_path: Path) -> Path:
    """Fine on 06-01 (clear) and 06-17 (12 % clear), coarse on 06-01, 06-09, 06-17."""
    days = ["2021-06-01", "2021-06-09", "2021-06-17"]
    manifest = make_site(tmp_path / "site", [days[0], days[2]], days)
    cloudy = np.zeros((32, 32), dtype=np.uint8)
    cloudy[:4] = 1  # 1 = clear: 4 rows of 32
    write_tif(manifest.parent / "mask_2021-06-17.tif", cloudy, nodata=None)
    ingest(manifest, tmp_path / "cube.zarr", chunk=16)
    return tmp_path / "cube.zarr"


def test_ingest_records_each_image_source(cube: Path) -> None:
    sources = open_cube(cube).attrs["fine_sources"]
    assert sorted(sources) == ["2021-06-01", "2021-06-17"]
    assert sources["2021-06-17"].endswith("fine_2021-06-17.tif")


def test_fuse_names_the_date_file_and_share_of_an_unusable_pair(cube: Path, tmp_path: Path) -> None:
    report = fuse(cube, tmp_path / "f.zarr", tile=16, params={"max_search_distance": 60.0})
    why = report.unusable_pairs["2021-06-17"]
    assert "fine_2021-06-17.tif" in why and "valid pixels < 50%" in why
    assert why.startswith("12.")  # 127 of 1024 pixels: clear and not nodata
    assert "not a pair: fine 2021-06-17: 12." in report.summary()


def test_no_usable_pair_names_the_unusable_one(
    cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "after.zarr"
    args = ["fuse", str(cube), str(out), "--date", "2021-06-09", "--pairs", "after", *SMALL]
    assert main([*args, "--tile", "16"]) == 2
    message = capsys.readouterr().err
    assert "2021-06-09: no usable pair with rule 'after'" in message
    assert "fine 2021-06-17 not a pair: 12." in message and "fine_2021-06-17.tif" in message
    assert not out.exists()


def test_tile_notes_follow_the_halo_and_the_memory_per_task() -> None:
    assert tile_notes(512, 25, bands=6, images=5) == []
    (amplified,) = tile_notes(16, 25, bands=6, images=5)
    assert "reads 17.0x its own pixels; --tile 50 or more reads at most 4x" in amplified
    (heavy,) = tile_notes(8192, 25, bands=6, images=5)
    assert "GiB of inputs per task" in heavy
