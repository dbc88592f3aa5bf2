"""Tile tasks for scheduling tests (no cube is read)."""

from __future__ import annotations

import numpy as np

from stfcube.pipeline.engine.methods.base import InputSpec
from stfcube.pipeline.engine.tasks import TileTask
from stfcube.pipeline.geometry.tiling import Tile


def tile_task(tile: Tile, *, out: tuple[int, ...], halo: int, shape: tuple[int, int]) -> TileTask:
    """A STARFM-shaped task of one pair and one date for ``tile`` (paths are placeholders)."""
    day = (np.datetime64("2024-05-01", "D"),)
    return TileTask(
        cube_path="c",
        out_path="o",
        method="starfm",
        params=None,
        statistics={},
        pair_index=(0,),
        pair_coarse_index=(0,),
        predict_index=(1,),
        out_index=out,
        pair_dates=day,
        predict_dates=day,
        bands=("b",),
        tile=tile,
        halo=halo,
        spec=InputSpec(),
        native=None,
        layers=("quality",),
        image_shape=shape,
        device="cpu",
        kernel_threads=1,
        run="r",
    )
