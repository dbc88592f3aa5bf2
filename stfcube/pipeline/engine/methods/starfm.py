"""STARFM (Gao et al. 2006) in the engine, as the USDA reference program computes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import dask.array as da
import numpy as np

from stfcube.kernels._backend import array_module
from stfcube.kernels.starfm import StarfmParams, slice_moments, slices_from_moments, starfm_tile
from stfcube.pipeline.engine.methods.arrays import chunk_sums
from stfcube.pipeline.engine.methods.base import (
    FusionMethod,
    OutputLayer,
    ParamDoc,
    StatisticsInputs,
    TileInputs,
    TileResult,
)
from stfcube.pipeline.engine.methods.registry import register


@register
class StarfmMethod(FusionMethod[StarfmParams]):
    """Per band, with the global slice thresholds (one per pair and band) computed over whole
    images, so tiled output is identical to the reference's whole-image output."""

    name = "starfm"
    params_type = StarfmParams
    summary = (
        "STARFM (Gao et al. 2006): similar-pixel weighting of 1-2 pairs; mode=usda reproduces "
        "the USDA C program v1.2.2 bit for bit"
    )
    min_pairs = 1
    max_pairs = 2
    devices = frozenset({"cpu", "gpu"})
    cost_unit = "similar-pixel candidates"
    parameter_docs: ClassVar[Mapping[str, ParamDoc]] = {
        "resolution": ParamDoc("m", "> 0", "fine pixel size"),
        "max_search_distance": ParamDoc(
            "m", "> 0", "half the search window: W = int(2 * distance / resolution)"
        ),
        "num_slice_pure_test": ParamDoc(
            "1", "integer >= 1", "slices: the similarity threshold is 2 sd / slices"
        ),
        "fine_uncertainty": ParamDoc("data units", ">= 0", "fine sensor uncertainty"),
        "coarse_uncertainty": ParamDoc("data units", ">= 0", "coarse sensor uncertainty"),
        "data_range": ParamDoc(
            "data units", "low,high with low < high", "usable inputs lie in [low, high]"
        ),
        "fill_value": ParamDoc("data units", "any number", "value marking missing inputs"),
        "mode": ParamDoc("-", "usda | paper", "the USDA program bit for bit, or the paper"),
        "use_spatial": ParamDoc(
            "-", "true | false", "search the window (true) or use the centre pixel only"
        ),
    }

    def halo(self, params: StarfmParams) -> int:
        return int(params.halo)

    def cost(self, params: StarfmParams, n_pairs: int, n_bands: int) -> float:
        """Candidates examined per fine pixel and date: the window, per pair and band."""
        return float(params.window**2 * n_pairs * n_bands)

    def output_layers(self, params: StarfmParams) -> tuple[OutputLayer, ...]:
        return (
            OutputLayer(
                "quality",
                "uint16",
                0,
                long_name="valid similar-pixel candidates used per pixel (0 = no prediction)",
            ),
        )

    def global_statistics(
        self, inputs: StatisticsInputs, params: StarfmParams
    ) -> dict[str, da.Array]:
        """Per pair and band, the moments of the fine image that give the slice thresholds."""

        def block_moments(fine_block: np.ndarray, valid_block: np.ndarray) -> np.ndarray:
            # fine_block (pairs, bands, y, x), valid_block (pairs, y, x) -> (pairs, bands, 3)
            per_band = [
                np.stack(slice_moments(fine_block[:, b], valid_block, params=params), axis=-1)
                for b in range(fine_block.shape[1])
            ]
            return np.stack(per_band, axis=1)

        return {"moments": chunk_sums(inputs.fine, inputs.fine_valid, block_moments, 3)}

    def fuse_tile(
        self,
        inputs: TileInputs,
        statistics: Mapping[str, np.ndarray],
        params: StarfmParams,
        state: Any,
    ) -> TileResult:
        xp = array_module(inputs.fine)
        moments = statistics["moments"]  # (pairs, bands, 3)
        predictions, qualities = [], []
        for band in range(inputs.fine.shape[1]):
            slices = slices_from_moments(
                moments[:, band, 0], moments[:, band, 1], moments[:, band, 2], params=params
            )
            result = starfm_tile(
                inputs.fine[:, band],
                inputs.coarse[:, band],
                inputs.coarse_pred[:, band],
                slices=slices,
                params=params,
                fine_valid=inputs.fine_valid,
                coarse_valid=inputs.coarse_valid,
                coarse_pred_valid=inputs.coarse_pred_valid,
                halo=inputs.halo,
            )
            predictions.append(result.prediction)
            qualities.append(result.quality)
        return TileResult(xp.stack(predictions, axis=1), {"quality": xp.stack(qualities, axis=1)})
