"""FSDAF (Zhu et al. 2016) in the engine: one pair, optional static class-map layer, two modes.

* ``mode=seamless``: the coarse images on the cube's native grid. The whole-image quantities
  (ISODATA centres, F1 clipping, unmixing per prediction date, clamp ranges, thresholds) are the
  group's global statistics; each tile computes the rest from a halo of ``2 w + scale_factor``
  fine pixels and ``2 tps_radius`` native coarse pixels, so tiled == whole image.
* ``mode=reference``: Zhu's IDL program on the fine-grid coarse images, its blocks of
  ``block_size`` coarse pixels laid from the image origin whatever the tiling. A tile computes
  the blocks its pixels need, with a halo of two blocks plus one coarse pixel (the neighbours'
  change steps feed the overlap ring), so tiled == whole image here too, at that read cost.
  Invalid fine pixels become the program's background.

Output layers: ``class`` (the class each pixel was predicted with) and ``residual`` (the
distributed coarse residual ``r`` per band, data units).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import dask
import dask.array as da
import numpy as np

from stfcube.kernels.fsdaf import FsdafParams
from stfcube.kernels.fsdaf._isodata import classify, isodata_centres
from stfcube.kernels.fsdaf._program import run_program
from stfcube.kernels.fsdaf._seamless import Geometry, classes_of, global_statistics, predict_region
from stfcube.kernels.fsdaf.api import last_block_classes, smoother
from stfcube.pipeline.engine.methods.arrays import (
    first_fine,
    inside_image,
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
from stfcube.pipeline.store.fused import OutputLayer

CLASS_LAYER = OutputLayer("class", "int16", -1, long_name="FSDAF class", per_band=False)
RESIDUAL_LAYER = OutputLayer(
    "residual", "float32", np.nan, long_name="FSDAF distributed coarse residual", units="data"
)


def _doc(units: str, valid: str, text: str) -> ParamDoc:
    return ParamDoc(units, valid, text)


@register
class FsdafMethod(FusionMethod[FsdafParams]):
    """One pair; reference (the IDL program's blocks) or seamless (tiled == whole image)."""

    name = "fsdaf"
    params_type = FsdafParams
    summary = (
        "FSDAF (Zhu et al. 2016): class unmixing, thin-plate spline, residual distribution, "
        "similar-pixel smoothing; mode=reference reproduces Zhu's IDL program"
    )
    min_pairs = 1
    max_pairs = 1
    devices = frozenset({"cpu", "gpu"})
    cost_unit = "window cells examined"
    per_date_statistics = frozenset({"c_rate", "clamp"})
    parameter_docs: ClassVar[Mapping[str, ParamDoc]] = {
        "window_radius": _doc("fine px", ">= 1", "w: (2w+1)^2 heterogeneity/smoothing window"),
        "n_similar": _doc("1", "1 .. (2w+1)^2 (GPU: <= 64)", "similar pixels of the smoothing"),
        "num_pure": _doc("1", ">= 1", "purest coarse pixels per class for the unmixing"),
        "dn_min": _doc("data", "< dn_max", "lowest valid value (clipping, clamps, fallback)"),
        "dn_max": _doc("data", "> dn_min", "highest valid value"),
        "scale_factor": _doc("fine px", ">= 1", "fine px per coarse px (seamless: the cube's)"),
        "block_size": _doc("coarse px", ">= 1", "reference: block side (1 coarse px overlap)"),
        "background": _doc("data", "any", "reference: background value in background_band"),
        "background_band": _doc("band index", "0-based", "reference: band marking background"),
        "nonchange_percentiles": _doc("1", "0 <= a <= b <= 1", "purest changes kept (a,b)"),
        "clip_percentiles": _doc("1", "0 <= a <= b <= 1", "F1 noise clipping quantiles (a,b)"),
        "weight_cap": _doc("1", "> 1", "residual weights above it take the mean"),
        "min_classes": _doc("1", "1 .. max_classes", "ISODATA: fewest classes"),
        "max_classes": _doc("1", "min_classes .. 255", "ISODATA: most classes"),
        "isodata_iterations": _doc("1", ">= 0", "ISODATA: iterations"),
        "change_threshold": _doc("1", "0 .. 1", "ISODATA: stop below this share changing"),
        "merge_distance": _doc("dn_max", ">= 0", "ISODATA: merge centres closer than this"),
        "merge_pairs": _doc("1", ">= 0", "ISODATA: most merges per iteration"),
        "min_pixels": _doc("1", ">= 0", "ISODATA: smallest class kept"),
        "split_std": _doc("dn_max", ">= 0", "ISODATA: split a class whose std exceeds this"),
        "split_multiplier": _doc("1", "> 0", "ISODATA: split centres at mean +- this * std"),
        "isodata_sample": _doc("pixels", ">= 1", "ISODATA: most pixels fitted (subsample)"),
        "tps_radius": _doc("coarse px", ">= 1", "seamless: local spline of (2k+1)^2 centres"),
        "truncate": _doc("-", "true | false", "truncate toward zero (the program's int cast)"),
        "mode": _doc("-", "reference | seamless", "the program's blocks, or tiled == whole"),
        "class_map": _doc("-", "a static cube layer or ''", "class map (0..255); '': ISODATA"),
    }

    def inputs(self, params: FsdafParams) -> InputSpec:
        static = (params.class_map,) if params.class_map else ()
        if params.mode == "reference":
            return InputSpec(static=static)
        return InputSpec(
            fine_grid=frozenset({"fine"}),
            native=frozenset({"coarse", "coarse_pred"}),
            native_halo=2 * params.tps_radius,
            static=static,
        )

    def halo(self, params: FsdafParams) -> int:
        """Seamless: 2 w + scale_factor; reference: two blocks plus one coarse pixel."""
        if params.mode == "reference":
            return 2 * params.patch + params.scale_factor
        return 2 * params.window_radius + params.scale_factor

    def cost(self, params: FsdafParams, n_pairs: int, n_bands: int) -> float:
        """Window cells ranked per fine pixel and date (the smoothing dominates)."""
        return float((2 * params.window_radius + 1) ** 2 * n_bands)

    def output_layers(self, params: FsdafParams) -> tuple[OutputLayer, ...]:
        return (CLASS_LAYER, RESIDUAL_LAYER)

    def load_state(self, params: FsdafParams, device: str) -> str:
        """The smoothing engine: ``cuda`` on a GPU worker, else ``numba``."""
        return "cuda" if device == "gpu" else "numba"

    def to_device(self, inputs: TileInputs, device: str) -> TileInputs:
        """Host arrays on every device: only the smoothing runs on the GPU (it copies there)."""
        return inputs

    def global_statistics(self, inputs: StatisticsInputs, params: FsdafParams) -> dict[str, Any]:
        """Seamless: the whole-image quantities; reference: ISODATA centres (without a class
        map) and the last block's class count. Computed on the whole image in one task."""
        n_bands = inputs.fine.shape[1]
        if params.background_band >= n_bands and params.mode == "reference":
            raise ConfigError(f"fsdaf: background_band={params.background_band} is not a band")
        fine = da.where(inputs.fine_valid[0, None], inputs.fine[0], np.nan)
        class_map = inputs.static.get(params.class_map) if params.class_map else None
        shapes: dict[str, tuple[int, ...]] = {"centres": (params.max_classes, n_bands)}
        if params.mode == "reference":
            task = dask.delayed(_reference_statistics)(fine, class_map, params)
            shapes["last_classes"] = (1,)
        else:
            native = inputs.native
            if not native:
                raise ConfigError("fsdaf mode=seamless needs the cube's native coarse grid")
            coarse = da.where(native["coarse_valid"][0, None], native["coarse"][0], np.nan)
            preds = da.where(native["coarse_pred_valid"][:, None], native["coarse_pred"], np.nan)
            geometry = Geometry(params.scale_factor, (0, 0))
            task = dask.delayed(_seamless_statistics)(
                fine, class_map, coarse, preds, geometry, params
            )
            n_dates = len(inputs.predict_dates)
            shapes |= {
                "clip": (n_bands, 4),
                "c_rate": (n_dates, n_bands, 256),
                "clamp": (n_dates, n_bands, 2),
                "threshold": (n_bands,),
            }
        return {
            key: da.from_delayed(task[key], shape=shape, dtype=np.float64)
            for key, shape in shapes.items()
        }

    def fuse_tile(
        self,
        inputs: TileInputs,
        statistics: Mapping[str, np.ndarray],
        params: FsdafParams,
        state: Any,
    ) -> TileResult:
        smooth = smoother(state or "numba")
        if params.mode == "reference":
            results = _reference_tile(inputs, statistics, params, smooth)
        else:
            results = _seamless_tile(inputs, statistics, params, smooth)
        prediction = np.stack([r.prediction for r in results]).astype(np.float32)
        layers = {
            CLASS_LAYER.name: np.stack([r.classes for r in results]).astype(np.int16),
            RESIDUAL_LAYER.name: np.stack([r.residual for r in results]).astype(np.float32),
        }
        return TileResult(prediction, layers)


def _reference_statistics(
    fine: np.ndarray, class_map: np.ndarray | None, params: FsdafParams
) -> dict[str, np.ndarray]:
    filled, background = _as_program_input(fine, params)
    centres = np.full((params.max_classes, fine.shape[0]), np.nan)
    if class_map is None:
        found = isodata_centres(filled[:, ~background].T, params)
        centres[: len(found)] = found
        class_map = classify(filled, found, ~background)
    last = last_block_classes(filled, class_map, params)
    return {"centres": centres, "last_classes": np.array([float(last)])}


def _seamless_statistics(
    fine: np.ndarray,
    class_map: np.ndarray | None,
    coarse: np.ndarray,
    preds: np.ndarray,
    geometry: Geometry,
    params: FsdafParams,
) -> dict[str, np.ndarray]:
    rows, cols = fine.shape[1:]
    fits = [r for r in range(1, max(rows, cols) + 1) if _covers(coarse.shape[1:], (rows, cols), r)]
    if geometry.ratio not in fits:
        ratio = fits[0] if fits else "the cube's coarse ratio"
        raise ConfigError(f"fsdaf mode=seamless: set scale_factor={ratio} (the cube's ratio)")
    try:
        return global_statistics(fine, class_map, coarse, preds, geometry, params)
    except ValueError as exc:
        raise ConfigError(f"fsdaf: {exc}") from None


def _covers(native: tuple[int, ...], fine: tuple[int, int], ratio: int) -> bool:
    """True when a native grid of ``ratio`` from the fine grid's corner has shape ``native``."""
    return native == (-(-fine[0] // ratio), -(-fine[1] // ratio))


def _as_program_input(fine: np.ndarray, params: FsdafParams) -> tuple[np.ndarray, np.ndarray]:
    """F1 with invalid pixels set to the background value in every band, and that mask."""
    invalid = ~np.isfinite(fine).all(axis=0)
    filled = np.where(invalid, params.background, fine)
    return filled, filled[params.background_band] == params.background


def _tile_class_map(inputs: TileInputs, params: FsdafParams, rows: slice, cols: slice) -> Any:
    if not params.class_map:
        return None
    return np.asarray(inputs.static[params.class_map])[rows, cols]


def _reference_tile(
    inputs: TileInputs, statistics: Mapping[str, np.ndarray], params: FsdafParams, smooth: Any
) -> list[Any]:
    rows, cols = inside_image(inputs)
    assert inputs.image_shape is not None  # inside_image checked it
    fine, background = _as_program_input(first_fine(inputs, rows, cols), params)
    classes = _tile_class_map(inputs, params, rows, cols)
    if classes is None:
        centres = statistics["centres"]
        classes = classify(fine, centres[np.isfinite(centres).all(axis=1)], ~background)
    t = inputs.tile
    origin = (t.row0 - inputs.halo + rows.start, t.col0 - inputs.halo + cols.start)
    coarse = inputs.coarse[0][:, rows, cols]
    out = []
    for pred in inputs.coarse_pred:
        result = run_program(
            (fine, coarse, pred[:, rows, cols], classes),
            params,
            smooth,
            origin=origin,
            image_shape=inputs.image_shape,
            window=(t.row0, t.row1, t.col0, t.col1),
            last_block_classes=int(statistics["last_classes"][0]),
        )
        r0, c0 = t.row0 - origin[0], t.col0 - origin[1]
        valid = inputs.fine_valid[0][rows, cols][
            r0 : r0 + t.row1 - t.row0, c0 : c0 + t.col1 - t.col0
        ]
        out.append(replace(result, prediction=np.where(valid, result.prediction, np.nan)))
    return out


def _seamless_tile(
    inputs: TileInputs, statistics: Mapping[str, np.ndarray], params: FsdafParams, smooth: Any
) -> list[Any]:
    if inputs.ratio != params.scale_factor or inputs.native_inside is None:
        raise ConfigError(
            f"fsdaf mode=seamless: set scale_factor={inputs.ratio} (the cube's ratio)"
        )
    rows, cols = inside_image(inputs)
    corner = (inputs.tile.row0 - inputs.halo, inputs.tile.col0 - inputs.halo)
    if (corner[0] + inputs.native_offset[0]) % inputs.ratio or (
        corner[1] + inputs.native_offset[1]
    ) % inputs.ratio:
        raise ConfigError("fsdaf mode=seamless needs a native grid aligned with the fine grid")
    fine = first_fine(inputs, rows, cols)
    coarse, preds, ratio, offset = native_coarse(inputs, rows, cols)
    geometry = Geometry(ratio, offset)
    classes = classes_of(fine, _tile_class_map(inputs, params, rows, cols), statistics["centres"])
    window = tile_window(inputs, rows, cols)
    stats = dict(statistics)
    return [
        predict_region(fine, classes, coarse, c2, geometry, stats, d, params, smooth, window)
        for d, c2 in enumerate(preds)
    ]
