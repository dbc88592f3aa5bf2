"""ESTARFM (Zhu et al. 2010) in the engine: two pairs around each prediction date, Zhu's IDL
program's rules (2018 revision), thresholds computed once over the whole images.

``mode=seamless`` (default): one set of thresholds from each pair's valid pixels and a halo of
``half_window``, so any tiling gives the whole-image output bit for bit. ``mode=reference``: the
program's ``block_size`` blocks from the image origin, each with the thresholds of its own valid
pixels (background values included), windows stopping at block borders; a tile computes each
block it overlaps separately, so tiled == whole image there too.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import dask.array as da
import numpy as np

from stfcube.kernels._backend import array_module
from stfcube.kernels.estarfm import EstarfmParams, estarfm_tile
from stfcube.kernels.estarfm._prepare import CODES, valid_pixels
from stfcube.kernels.estarfm.statistics import threshold_moments, thresholds_from_moments
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


@dataclass(frozen=True)
class FlagLayer(OutputLayer):
    """An output layer of codes, with CF ``flag_values`` and ``flag_meanings``."""

    flags: tuple[tuple[int, str], ...] = ()

    def attrs(self) -> dict[str, Any]:
        """CF attributes, flags included."""
        return {
            **super().attrs(),
            "flag_values": [value for value, _ in self.flags],
            "flag_meanings": " ".join(meaning for _, meaning in self.flags),
        }


def _moments(fine: np.ndarray, valid: np.ndarray, background: float, reference: bool) -> Any:
    """One chunk's threshold moments ``(pairs, band, 3)``: all finite valid pixels in reference
    mode (background included, as the program does), only fully valid ones in seamless mode."""
    if reference:
        usable = valid & np.isfinite(fine).all(axis=1)
    else:
        usable = valid_pixels(np, fine, valid, background)
    return threshold_moments(fine, usable)


def _region_moments(fine: da.Array, valid: da.Array, params: EstarfmParams) -> da.Array:
    """Lazy threshold moments ``(pairs, band, 3)`` of a region, summed chunk by chunk."""
    moments = functools.partial(
        _moments, background=params.background, reference=params.mode == "reference"
    )
    return chunk_sums(fine, valid, moments, 3)


@register
class EstarfmMethod(FusionMethod[EstarfmParams]):
    """Two pairs (one before, one after the date), all bands at once."""

    name = "estarfm"
    params_type = EstarfmParams
    summary = (
        "ESTARFM (Zhu et al. 2010): two pairs, similar pixels over all bands, per-window "
        "conversion coefficients; mode=reference reproduces Zhu's IDL program (2018)"
    )
    min_pairs = 2
    max_pairs = 2
    devices = frozenset({"cpu", "gpu"})
    cost_unit = "window-cell similarity tests"
    parameter_docs: ClassVar[Mapping[str, ParamDoc]] = {
        "half_window": ParamDoc(
            "fine px", "integer >= 1", "w: search window (2w+1)^2; spatial weights 1 + d/w"
        ),
        "num_class": ParamDoc(
            "1", "> 0", "classes: similar when |F(x) - F(c)| < 2 sd / num_class in every band"
        ),
        "data_range": ParamDoc(
            "data units",
            "DN_min,DN_max with DN_min < DN_max",
            "predictions outside fall back to the weighted base images; 2 % of DN_max is the "
            "least coarse change for a fitted conversion coefficient",
        ),
        "background": ParamDoc(
            "data units", "any number", "band-0 value marking background in any input"
        ),
        "block_size": ParamDoc(
            "fine px", "integer >= 1", "reference mode: the program's blocks (patch_long)"
        ),
        "mode": ParamDoc(
            "-",
            "seamless | reference",
            "whole-image thresholds (tiled == whole) or the program's blocks",
        ),
    }

    def halo(self, params: EstarfmParams) -> int:
        return params.half_window

    def cost(self, params: EstarfmParams, n_pairs: int, n_bands: int) -> float:
        """Window cells tested per fine pixel and date, per pair and band."""
        return float(params.span**2 * n_pairs * n_bands)

    def output_layers(self, params: EstarfmParams) -> tuple[OutputLayer, ...]:
        return (
            FlagLayer(
                "estarfm_code",
                "uint8",
                0,
                long_name="how ESTARFM predicted the pixel and band",
                flags=tuple(CODES.items()),
            ),
            OutputLayer(
                "similar_pixels",
                "uint16",
                0,
                long_name="similar pixels used per pixel (0 = no prediction)",
                per_band=False,
            ),
        )

    def global_statistics(
        self, inputs: StatisticsInputs, params: EstarfmParams
    ) -> dict[str, da.Array]:
        """``moments`` ``(block rows, block cols, pairs, band, 3)`` of the thresholds: one block
        (the whole image) in seamless mode, the program's blocks in reference mode."""
        rows, cols = inputs.fine.shape[2:]
        size = params.block_size if params.mode == "reference" else max(rows, cols)
        grid = [
            [
                _region_moments(
                    inputs.fine[:, :, r : r + size, c : c + size],
                    inputs.fine_valid[:, r : r + size, c : c + size],
                    params,
                )
                for c in range(0, cols, size)
            ]
            for r in range(0, rows, size)
        ]
        return {"moments": da.stack([da.stack(row) for row in grid])}

    def fuse_tile(
        self,
        inputs: TileInputs,
        statistics: Mapping[str, np.ndarray],
        params: EstarfmParams,
        state: Any,
    ) -> TileResult:
        xp = array_module(inputs.fine)
        t, halo = inputs.tile, inputs.halo
        n_dates, n_bands = inputs.coarse_pred.shape[:2]
        h, w = t.row1 - t.row0, t.col1 - t.col0
        prediction = xp.full((n_dates, n_bands, h, w), xp.nan, dtype=xp.float32)
        code = xp.zeros(prediction.shape, dtype=xp.uint8)
        count = xp.zeros((n_dates, h, w), dtype=xp.uint16)
        moments = statistics["moments"]
        rows, cols = inputs.fine.shape[2:]
        if inputs.image_shape is not None:  # the halo beyond the image's far edges is empty
            rows = min(rows, inputs.image_shape[0] - (t.row0 - halo))
            cols = min(cols, inputs.image_shape[1] - (t.col0 - halo))
        size = params.block_size if params.mode == "reference" else None
        for (by, bx), (r0, r1, c0, c1) in _blocks(t.row0 - halo, t.col0 - halo, rows, cols, size):
            region = (..., slice(r0, r1), slice(c0, c1))
            window = (
                max(halo, r0) - r0,
                min(halo + h, r1) - r0,
                max(halo, c0) - c0,
                min(halo + w, c1) - c0,
            )
            if window[0] >= window[1] or window[2] >= window[3]:
                continue
            part = estarfm_tile(
                inputs.fine[region],
                inputs.coarse[region],
                inputs.coarse_pred[region],
                thresholds_from_moments(moments[by, bx], params.num_class),
                params,
                fine_valid=inputs.fine_valid[region],
                coarse_valid=inputs.coarse_valid[region],
                coarse_pred_valid=inputs.coarse_pred_valid[region],
                window=window,
            )
            out = (
                ...,
                slice(window[0] + r0 - halo, window[1] + r0 - halo),
                slice(window[2] + c0 - halo, window[3] + c0 - halo),
            )
            prediction[out] = part.prediction
            code[out] = part.code
            count[out] = xp.minimum(part.count, np.iinfo(np.uint16).max)
        return TileResult(prediction, {"estarfm_code": code, "similar_pixels": count})


def _blocks(
    row0: int, col0: int, rows: int, cols: int, size: int | None
) -> list[tuple[tuple[int, int], tuple[int, int, int, int]]]:
    """The program blocks a halo-extended tile overlaps: block index and the tile's rows and
    columns inside it (``size=None``: the whole tile, block (0, 0))."""
    if size is None:
        return [((0, 0), (0, rows, 0, cols))]
    out = []
    for by in range(max(0, row0) // size, max(0, row0 + rows - 1) // size + 1):
        for bx in range(max(0, col0) // size, max(0, col0 + cols - 1) // size + 1):
            r0, r1 = max(by * size - row0, 0), min((by + 1) * size - row0, rows)
            c0, c1 = max(bx * size - col0, 0), min((bx + 1) * size - col0, cols)
            if r0 < r1 and c0 < c1:
                out.append(((by, bx), (r0, r1, c0, c1)))
    return out
