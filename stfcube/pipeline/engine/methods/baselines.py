"""The baselines every method is reported beside: ``nochange`` and ``coarse-residual``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from stfcube.kernels.baselines import SPREADS, coarse_residual, nochange
from stfcube.pipeline.engine.methods.base import (
    FusionMethod,
    InputSpec,
    OutputLayer,
    ParamDoc,
    TileInputs,
    TileResult,
)
from stfcube.pipeline.engine.methods.registry import register

#: The layer both baselines write: which fine image each pixel came from.
OFFSET_LAYER = OutputLayer(
    "fine_offset_days",
    "int16",
    -32768,
    long_name="days from the prediction date to the fine image used (pair - date)",
    units="d",
    per_band=False,
)


def pair_offsets(inputs: TileInputs) -> np.ndarray:
    """``(dates, pairs)`` days from each prediction date to each pair date (pair - date)."""
    pairs = np.asarray(inputs.pair_dates, dtype="datetime64[D]")
    dates = np.asarray(inputs.predict_dates, dtype="datetime64[D]")
    return (pairs[None, :] - dates[:, None]).astype(np.int64)


@dataclass(frozen=True)
class NochangeParams:
    """``nochange`` has no parameters."""


@register
class NochangeMethod(FusionMethod[NochangeParams]):
    """The nearest usable fine image in time, pixel by pixel (the floor every method must beat)."""

    name = "nochange"
    summary = "baseline: the nearest valid fine pixel in time (no change since the fine image)"
    params_type = NochangeParams
    parameter_docs: ClassVar[Mapping[str, ParamDoc]] = {}
    devices = frozenset({"cpu", "gpu"})
    cost_unit = "pixel copies"

    def inputs(self, params: NochangeParams) -> InputSpec:
        return InputSpec(fine_grid=frozenset({"fine"}), pairs_need_coarse=False)

    def halo(self, params: NochangeParams) -> int:
        return 0

    def cost(self, params: NochangeParams, n_pairs: int, n_bands: int) -> float:
        return float(n_pairs * n_bands)

    def output_layers(self, params: NochangeParams) -> tuple[OutputLayer, ...]:
        return (OFFSET_LAYER,)

    def fuse_tile(
        self,
        inputs: TileInputs,
        statistics: Mapping[str, np.ndarray],
        params: NochangeParams,
        state: Any,
    ) -> TileResult:
        prediction, offsets = nochange(inputs.fine, inputs.fine_valid, pair_offsets(inputs))
        return TileResult(prediction, {OFFSET_LAYER.name: offsets})


@dataclass(frozen=True)
class CoarseResidualParams:
    """Parameters of ``coarse-residual``.

    Parameters
    ----------
    spread
        How the coarse change reaches the fine pixels: ``"bilinear"`` (at the fine pixel centres,
        from the 2 x 2 nearest coarse pixels) or ``"nearest"`` (the coarse pixel's block).
    """

    spread: str = "bilinear"

    def __post_init__(self) -> None:
        if self.spread not in SPREADS:
            raise ValueError(f"spread must be one of {', '.join(SPREADS)}, got {self.spread!r}")


@register
class CoarseResidualMethod(FusionMethod[CoarseResidualParams]):
    """The nearest fine image plus the coarse change since its date, computed on the native
    coarse grid (no resampling of the coarse data to the fine grid)."""

    name = "coarse-residual"
    summary = (
        "baseline: nearest fine image + the coarse change since its date, computed on the native "
        "coarse grid and spread to the fine pixels"
    )
    params_type = CoarseResidualParams
    parameter_docs: ClassVar[Mapping[str, ParamDoc]] = {
        "spread": ParamDoc(
            "-", " | ".join(SPREADS), "coarse change to fine pixels: interpolated or by block"
        ),
    }
    devices = frozenset({"cpu", "gpu"})
    cost_unit = "weighted coarse reads"

    def inputs(self, params: CoarseResidualParams) -> InputSpec:
        return InputSpec(
            fine_grid=frozenset({"fine"}),
            native=frozenset({"coarse", "coarse_pred"}),
            native_halo=SPREADS[params.spread][1],
        )

    def halo(self, params: CoarseResidualParams) -> int:
        return 0

    def cost(self, params: CoarseResidualParams, n_pairs: int, n_bands: int) -> float:
        return float(4 * n_pairs * n_bands)

    def output_layers(self, params: CoarseResidualParams) -> tuple[OutputLayer, ...]:
        return (OFFSET_LAYER,)

    def fuse_tile(
        self,
        inputs: TileInputs,
        statistics: Mapping[str, np.ndarray],
        params: CoarseResidualParams,
        state: Any,
    ) -> TileResult:
        if inputs.ratio is None:
            raise ValueError("coarse-residual needs the cube's native coarse grid")
        native = inputs.native
        prediction, offsets = coarse_residual(
            inputs.fine,
            inputs.fine_valid,
            native["coarse"],
            native["coarse_valid"],
            native["coarse_pred"],
            native["coarse_pred_valid"],
            pair_offsets(inputs),
            inputs.ratio,
            inputs.native_offset,
            params.spread,
        )
        return TileResult(prediction, {OFFSET_LAYER.name: offsets})
