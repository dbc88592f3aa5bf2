"""Fit-FC (Wang & Atkinson 2018) in the engine: regression on the native coarse grid, bicubic
residual, spatial filter; tiled output equals the whole-image program's.

A tile reads its fine pairs' image halo-extended by w0 and the native coarse block covering that
plus W + 2 coarse pixels (the regression window and the bicubic taps). Both are cut to the part
inside the image before the kernel runs, so the kernel's edge rules (regression windows
truncated, bicubic taps folded, the filter's edge replication) apply at the image border, never
at a tile border.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from stfcube.kernels._backend import array_module
from stfcube.kernels.fitfc import FitfcParams, rm_rc, spatial_filter
from stfcube.kernels.fitfc.api import similarity_bands
from stfcube.pipeline.engine.methods.arrays import (
    first_fine,
    inside_image,
    masked_coarse,
    native_coarse,
    tile_window,
)
from stfcube.pipeline.engine.methods.base import (
    FusionMethod,
    InputSpec,
    ParamDoc,
    StatisticsInputs,
    TileInputs,
    TileResult,
)
from stfcube.pipeline.engine.methods.registry import register
from stfcube.pipeline.errors import ConfigError

#: Coarse pixels the bicubic upsampling reads beyond the coarse pixel under a fine pixel.
BICUBIC_SUPPORT = 2


@register
class FitfcMethod(FusionMethod[FitfcParams]):
    """One pair; the regression runs on the cube's native coarse grid (no resampling)."""

    name = "fitfc"
    params_type = FitfcParams
    summary = (
        "Fit-FC (Wang & Atkinson 2018): local regression on the coarse grid, bicubic residual, "
        "similar-neighbour filter; mode=reference reproduces Q. Wang's MATLAB program"
    )
    min_pairs = 1
    max_pairs = 1
    devices = frozenset({"cpu", "gpu"})
    cost_unit = "window cells examined"
    parameter_docs: ClassVar[Mapping[str, ParamDoc]] = {
        "regression_radius": ParamDoc(
            "coarse px", "integer >= 0", "W: regression window (2W+1)^2 on the coarse grid"
        ),
        "filter_radius": ParamDoc(
            "fine px", "integer >= 0", "w0: spatial-filter window (2 w0 + 1)^2"
        ),
        "n_similar": ParamDoc(
            "1", "1 .. (2 w0 + 1)^2 (GPU: <= 64)", "N_S: neighbours kept by the spatial filter"
        ),
        "distance_scale": ParamDoc(
            "fine px", ">= 0", "A in the weights 1 / (1 + d / A); 0: (2 w0 + 1) / 2"
        ),
        "red_band": ParamDoc("band index", "0-based, < bands", "red band ranking neighbours"),
        "nir_band": ParamDoc("band index", "0-based, < bands", "NIR band ranking neighbours"),
        "similarity": ParamDoc(
            "-", "red_nir | all_bands", "bands whose squared differences rank the neighbours"
        ),
        "mode": ParamDoc(
            "-",
            "reference | seamless",
            "the program (NaN spreads) or nodata left out of regression and filter",
        ),
        "coarse_grid": ParamDoc(
            "-",
            "native | fine",
            "regression on the cube's native coarse grid (W in coarse px) or on the coarse "
            "images resampled to the fine grid (W in fine px; cubes without a native grid)",
        ),
    }

    def inputs(self, params: FitfcParams) -> InputSpec:
        if params.coarse_grid == "fine":
            return InputSpec(fine_grid=frozenset({"fine", "coarse", "coarse_pred"}))
        return InputSpec(
            fine_grid=frozenset({"fine"}),
            native=frozenset({"coarse", "coarse_pred"}),
            native_halo=params.regression_radius + BICUBIC_SUPPORT,
        )

    def halo(self, params: FitfcParams) -> int:
        """w0; on the fine grid also W, so the regression of every filtered pixel is whole."""
        extra = params.regression_radius if params.coarse_grid == "fine" else 0
        return params.filter_radius + extra

    def cost(self, params: FitfcParams, n_pairs: int, n_bands: int) -> float:
        """Window cells ranked per fine pixel and date, plus the neighbours averaged."""
        return float(params.window_cells + params.n_similar * n_bands)

    def global_statistics(self, inputs: StatisticsInputs, params: FitfcParams) -> dict[str, Any]:
        """None; checks before any tile that the similarity bands exist in the cube."""
        try:
            similarity_bands(params, inputs.fine.shape[1])
        except ValueError as exc:
            raise ConfigError(f"fitfc: {exc}") from None
        return {}

    def fuse_tile(
        self,
        inputs: TileInputs,
        statistics: Mapping[str, np.ndarray],
        params: FitfcParams,
        state: Any,
    ) -> TileResult:
        xp = array_module(inputs.fine)
        rows, cols = inside_image(inputs)
        fine = first_fine(inputs, rows, cols)
        coarse, coarse_pred, ratio, offset = _coarse_blocks(inputs, params, rows, cols)
        window = tile_window(inputs, rows, cols)
        n_dates = len(coarse_pred)
        z2 = [rm_rc(fine, coarse, pred, ratio, params, offset=offset) for pred in coarse_pred]
        if params.mode == "reference":
            # the neighbours depend on F1 alone: one selection serves every date
            filtered = spatial_filter(fine, xp.concatenate(z2), params, window=window)
            prediction = filtered.reshape(n_dates, -1, *filtered.shape[1:])
        else:  # a neighbour's usability depends on the date's Z2
            prediction = xp.stack([spatial_filter(fine, z, params, window=window) for z in z2])
        return TileResult(prediction.astype(xp.float32))


def _coarse_blocks(
    inputs: TileInputs, params: FitfcParams, rows: slice, cols: slice
) -> tuple[Any, list[Any], int, tuple[int, int]]:
    """C1, each date's C2 (NaN where invalid) cut to the image, their ratio to the fine grid and
    the offset of their corner from the cut fine block's, on the grid ``params`` asks for."""
    if params.coarse_grid == "fine":
        coarse, preds = masked_coarse(
            inputs.coarse,
            inputs.coarse_valid,
            inputs.coarse_pred,
            inputs.coarse_pred_valid,
            (slice(None), rows, cols),
        )
        return coarse, preds, 1, (0, 0)
    return native_coarse(inputs, rows, cols)
