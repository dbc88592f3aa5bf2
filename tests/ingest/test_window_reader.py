"""The window reader of ingest (issue 18): one task per chunk, the same decoded values as a
whole-image read, nodata, footprint and mask applied in that one task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_ingest import NODATA, coarse_image, fine_image, mask_image, write_tif

from stfcube.pipeline.ingest.readers import Scene, probe_raster, read_scene

DAY = np.datetime64("2021-06-01")


def _expected(raw: np.ndarray, keep: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """Decoded values with NaN where a band is at nodata or ``keep`` is False."""
    valid = keep & (raw != NODATA).all(axis=0)
    values = (raw.astype(np.float64) * scale + offset).astype(np.float32)
    return np.where(valid, values, np.float32(np.nan))


def test_one_task_per_chunk_same_values_as_a_whole_read(tmp_path: Path) -> None:
    raw = fine_image(3)
    image = write_tif(tmp_path / "fine.tif", raw)
    mask = write_tif(tmp_path / "mask.tif", mask_image(3), nodata=None)
    scene = Scene(
        "fine", DAY, str(image), (1, 2, 3), 0.5, 10.0, mask_path=str(mask), mask_valid_values=(1,)
    )
    info, mask_info = probe_raster(str(image)), probe_raster(str(mask))
    values, valid = read_scene(scene, info, info.grid, chunk=16, mask_info=mask_info)
    assert values.numblocks == (1, 2, 2)
    assert len(values.__dask_graph__()) == 4  # open, read, decode and mask: one task a chunk
    expected = _expected(raw, mask_image(3) == 1, 0.5, 10.0)
    np.testing.assert_array_equal(values.compute(), expected)
    np.testing.assert_array_equal(valid.compute(), np.isfinite(expected).all(axis=0))


def test_warped_window_is_nan_outside_the_footprint(tmp_path: Path) -> None:
    coarse = write_tif(tmp_path / "coarse.tif", coarse_image(1), res=240.0)
    fine = probe_raster(str(write_tif(tmp_path / "fine.tif", fine_image(1, size=48))))
    scene = Scene("coarse", DAY, str(coarse), (1, 2, 3))
    values, valid = read_scene(scene, probe_raster(str(coarse)), fine.grid, chunk=16)
    inside = np.zeros((48, 48), dtype=bool)
    inside[:32, :32] = True  # the 4 x 4 coarse pixels of 240 m cover 32 x 32 fine pixels
    np.testing.assert_array_equal(valid.compute(), inside)
    repeated = coarse_image(1).repeat(8, axis=1).repeat(8, axis=2).astype(np.float32)
    np.testing.assert_array_equal(values.compute()[:, :32, :32], repeated)
    assert np.isnan(values.compute()[:, 32:, :]).all()
