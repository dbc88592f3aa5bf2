"""The tile tasks' cache of decoded Zarr chunks: same bytes as a direct read, bounded, per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from stfcube.pipeline.engine import chunk_cache
from stfcube.pipeline.engine.chunk_cache import DecodedChunkCache, read_halo_block
from stfcube.pipeline.geometry.tiling import Tile, halo_window, pad_spatial, tile_grid


def _store(path: Path, time_chunk: int = 1) -> Path:
    """A cube-like group: ``fine`` (time, band, y, x) float32 and ``valid`` (time, y, x) bool."""
    rng = np.random.default_rng(0)
    group = zarr.open_group(str(path), mode="w")
    fine = group.create_array(
        "fine", shape=(4, 2, 45, 38), chunks=(time_chunk, 1, 16, 12), dtype="float32"
    )
    fine[...] = rng.normal(size=fine.shape).astype(np.float32)
    valid = group.create_array("valid", shape=(4, 45, 38), chunks=(time_chunk, 16, 12), dtype=bool)
    valid[...] = rng.random(valid.shape) > 0.3
    return path


def _direct(path: Path, name: str, index: list[int], tile: Tile, halo: int, fill: object):
    array = zarr.open_group(str(path), mode="r")[name]
    rows, cols, pad = halo_window(tile, halo, array.shape[-2:])
    middle = (slice(None),) * (array.ndim - 3)
    block = np.asarray(array.get_orthogonal_selection((index, *middle, rows, cols)))
    return pad_spatial(block, pad, fill)


@pytest.mark.parametrize("time_chunk", [1, 3])
def test_windows_equal_direct_reads_at_every_tile_and_edge(tmp_path: Path, time_chunk: int) -> None:
    path = _store(tmp_path / "cube.zarr", time_chunk)
    for tile in tile_grid((45, 38), 10):
        for name, index, fill in (("fine", [0, 2], np.nan), ("valid", [3, 1], False)):
            for halo in (0, 7, 20):
                got = read_halo_block("run-a", str(path), name, index, tile, halo, (45, 38), fill)
                want = _direct(path, name, index, tile, halo, fill)
                np.testing.assert_array_equal(got, want)
                assert got.dtype == want.dtype


def test_cache_is_bounded_and_evicts_least_recent(tmp_path: Path) -> None:
    path = _store(tmp_path / "cube.zarr")
    array = zarr.open_group(str(path), mode="r")["valid"]
    chunk_bytes = 16 * 12  # bool
    cache = DecodedChunkCache(max_bytes=3 * chunk_bytes)
    for col in range(4):
        cache.chunk("r", array, 0, 0, col)
    assert cache.nbytes <= 3 * chunk_bytes and cache.misses == 4
    cache.chunk("r", array, 0, 0, 3)  # most recent: still cached
    assert cache.hits == 1
    cache.chunk("r", array, 0, 0, 0)  # least recent: evicted, decoded again
    assert cache.misses == 5
    block = cache.chunk("r", array, 0, 0, 3)
    assert not block.flags.writeable  # shared between tasks: read-only


def test_new_run_never_sees_chunks_of_a_rewritten_store(tmp_path: Path) -> None:
    path = _store(tmp_path / "cube.zarr")
    tile = Tile(ty=0, tx=0, row0=0, row1=10, col0=0, col1=10)
    before = read_halo_block("run-1", str(path), "fine", [0], tile, 2, (45, 38), np.nan)
    zarr.open_group(str(path), mode="r+")["fine"][...] = 5.0
    again = read_halo_block("run-1", str(path), "fine", [0], tile, 2, (45, 38), np.nan)
    fresh = read_halo_block("run-2", str(path), "fine", [0], tile, 2, (45, 38), np.nan)
    np.testing.assert_array_equal(again, before)  # one run reads one state of the cube
    assert np.all(fresh[..., 2:, 2:] == 5.0) and np.isnan(fresh[..., :2, :]).all()


def test_zero_budget_reads_directly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _store(tmp_path / "cube.zarr")
    monkeypatch.setattr(chunk_cache, "CHUNKS", DecodedChunkCache(max_bytes=0))
    tile = Tile(ty=1, tx=1, row0=10, row1=20, col0=10, col1=20)
    got = read_halo_block("r", str(path), "fine", [1, 0], tile, 12, (45, 38), np.nan)
    np.testing.assert_array_equal(got, _direct(path, "fine", [1, 0], tile, 12, np.nan))
    assert chunk_cache.CHUNKS.nbytes == 0 and chunk_cache.CHUNKS.hits == 0


def test_release_frees_only_that_run(tmp_path: Path) -> None:
    path = _store(tmp_path / "cube.zarr")
    array = zarr.open_group(str(path), mode="r")["valid"]
    cache = DecodedChunkCache(max_bytes=2**20)
    for run in ("a", "b"):
        cache.chunk(run, array, 0, 0, 0)
        cache.array(run, str(path), "valid")
    cache.release("a")
    assert cache.nbytes == 16 * 12
    cache.chunk("b", array, 0, 0, 0)
    assert cache.hits == 1  # run b kept its chunk


def test_a_finished_fusion_run_leaves_no_chunks_behind(tmp_path: Path) -> None:
    from helpers.cube_factory import block_mean, synthetic_scene, write_cube
    from stfcube.pipeline.engine.run import fuse

    days = ["2024-05-01", "2024-05-03"]
    truth = synthetic_scene((48, 48), 1, days, seed=2)
    cube = write_cube(tmp_path / "c.zarr", {days[0]: truth[days[0]]}, block_mean(truth, 8))
    cached, misses = chunk_cache.CHUNKS.nbytes, chunk_cache.CHUNKS.misses
    report = fuse(cube, tmp_path / "f.zarr", tile=16, params={"max_search_distance": 300.0})
    assert report.tiles_computed == 9
    assert chunk_cache.CHUNKS.misses > misses  # the tiles read through the cache ...
    assert chunk_cache.CHUNKS.nbytes == cached  # ... and the run's chunks were released


def test_strip_order_reuses_decoded_chunks_on_wide_images(tmp_path: Path) -> None:
    """Tiles in strips (``spatial_shares``) decode each chunk ~once with a cache far smaller than an
    image row of chunks; row-major order decodes every chunk row three times."""
    from helpers.tasks import tile_task
    from stfcube.pipeline.engine.tasks import STRIP_TILES, spatial_shares

    shape, tile_size, halo = (32, 320), 8, 2  # 4 x 40 tiles, one 8 x 8 chunk each
    group = zarr.open_group(str(tmp_path / "wide.zarr"), mode="w")
    array = group.create_array("fine", shape=(1, 1, *shape), chunks=(1, 1, 8, 8), dtype="float32")
    array[...] = 1.0
    tasks = [tile_task(t, out=(0,), halo=halo, shape=shape) for t in tile_grid(shape, tile_size)]
    chunk_bytes = 8 * 8 * 4
    budget = (STRIP_TILES + 2) * 3 * chunk_bytes + chunk_bytes  # a strip's 3 chunk rows, not 40

    def misses(order: list) -> int:
        cache = DecodedChunkCache(max_bytes=budget)
        for task in order:
            rows, cols, _ = halo_window(task.tile, halo, shape)
            cache.window("r", array, [0], rows, cols)
        return cache.misses

    unique = 4 * 40
    row_major = misses(sorted(tasks, key=lambda t: (t.tile.ty, t.tile.tx)))
    (strips,) = spatial_shares(tasks, 1)
    in_strips = misses(strips)
    assert in_strips < 0.6 * row_major
    assert in_strips <= 1.4 * unique
