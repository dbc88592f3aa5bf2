"""Test-only fusion methods, plugged into the engine by name (``"helpers.static_method:Class"``)
without editing it: a static-layer method with its own statistics and layer, and a two-pair one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import dask.array as da
import numpy as np

from stfcube.pipeline.engine.methods.base import (
    FusionMethod,
    InputSpec,
    OutputLayer,
    ParamDoc,
    StatisticsInputs,
    TileInputs,
    TileResult,
)

CLASS_LAYER = OutputLayer("class", "int16", -1, long_name="class of the pixel", per_band=False)


@dataclass(frozen=True)
class ClassChangeParams:
    """``layer``: the static class map (classes 0..``n_classes`` - 1; ``""``: one class)."""

    layer: str = "landcover"
    n_classes: int = 4


class ClassChangeMethod(FusionMethod[ClassChangeParams]):
    """The pair's fine image plus the mean coarse change of the pixel's class over the whole
    image (global statistics per prediction date, from the coarse images and the class map)."""

    name = "test-class-change"
    summary = "test only: fine + per-class mean coarse change"
    per_date_statistics = frozenset({"class_change"})
    params_type = ClassChangeParams
    parameter_docs: ClassVar[Mapping[str, ParamDoc]] = {
        "layer": ParamDoc("-", "a static cube layer", "class map"),
        "n_classes": ParamDoc("1", ">= 1", "number of classes"),
    }
    min_pairs = 1
    max_pairs = 1
    default_pairs = 1

    def inputs(self, params: ClassChangeParams) -> InputSpec:
        return InputSpec(static=(params.layer,) if params.layer else ())

    def halo(self, params: ClassChangeParams) -> int:
        return 0

    def cost(self, params: ClassChangeParams, n_pairs: int, n_bands: int) -> float:
        return float(n_bands)

    def output_layers(self, params: ClassChangeParams) -> tuple[OutputLayer, ...]:
        return (CLASS_LAYER,)

    def global_statistics(
        self, inputs: StatisticsInputs, params: ClassChangeParams
    ) -> dict[str, da.Array]:
        classes = inputs.static.get(params.layer, da.zeros(inputs.fine.shape[-2:], dtype=int))
        change = inputs.coarse_pred - inputs.coarse[:1]  # (dates, band, y, x)
        valid = inputs.coarse_pred_valid & inputs.coarse_valid[:1]  # (dates, y, x)
        means = []
        for c in range(params.n_classes):
            inside = valid & (classes == c)[None]
            total = da.where(inside[:, None], change, 0).sum(axis=(2, 3))
            means.append(total / da.maximum(inside.sum(axis=(1, 2)), 1)[:, None])
        return {"class_change": da.stack(means, axis=1)}  # (dates, classes, band)

    def fuse_tile(
        self,
        inputs: TileInputs,
        statistics: Mapping[str, np.ndarray],
        params: ClassChangeParams,
        state: Any,
    ) -> TileResult:
        classes = inputs.static.get(params.layer, np.zeros(inputs.fine.shape[-2:], dtype=int))
        prediction = _class_prediction(inputs, 0, statistics["class_change"], classes)
        return TileResult(prediction, {CLASS_LAYER.name: _class_layer(inputs, classes)})


def _class_prediction(inputs: TileInputs, k: int, change: np.ndarray, classes: Any) -> Any:
    """Pair ``k``'s fine image plus its per-class change ``(dates, classes, band)``."""
    per_pixel = np.moveaxis(change[:, classes], -1, 1)  # (dates, band, y, x)
    valid = inputs.fine_valid[k : k + 1, None]
    return np.where(valid, inputs.fine[k : k + 1] + per_pixel, np.nan).astype(np.float32)


def _class_layer(inputs: TileInputs, classes: Any) -> Any:
    return np.broadcast_to(classes.astype(np.int16), (len(inputs.predict_dates), *classes.shape))


class TwoPairMeanMethod(ClassChangeMethod):
    """Two pairs, one before and one after: the mean of both pairs' class-change predictions."""

    name = "test-two-pair"
    per_date_statistics = frozenset({"pair0", "pair1"})
    min_pairs = 2
    max_pairs = 2
    default_pairs = "nearest"

    def global_statistics(
        self, inputs: StatisticsInputs, params: ClassChangeParams
    ) -> dict[str, da.Array]:
        return {
            f"pair{k}": ClassChangeMethod.global_statistics(self, _one_pair(inputs, k), params)[
                "class_change"
            ]
            for k in range(2)
        }

    def fuse_tile(
        self,
        inputs: TileInputs,
        statistics: Mapping[str, np.ndarray],
        params: ClassChangeParams,
        state: Any,
    ) -> TileResult:
        classes = inputs.static.get(params.layer, np.zeros(inputs.fine.shape[-2:], dtype=int))
        pairs = [_class_prediction(inputs, k, statistics[f"pair{k}"], classes) for k in range(2)]
        mean = ((pairs[0] + pairs[1]) / 2).astype(np.float32)
        return TileResult(mean, {CLASS_LAYER.name: _class_layer(inputs, classes)})


def _one_pair(inputs: StatisticsInputs, k: int) -> StatisticsInputs:
    return replace(
        inputs,
        fine=inputs.fine[k : k + 1],
        fine_valid=inputs.fine_valid[k : k + 1],
        coarse=inputs.coarse[k : k + 1],
        coarse_valid=inputs.coarse_valid[k : k + 1],
    )
