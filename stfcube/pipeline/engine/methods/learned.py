"""Learned models (``stfcube train``) in the engine: ``--method learned -p model=MODEL_DIR``.

The model directory says which network it holds; its halo is the network's exact receptive
field (:func:`stfcube.kernels.learned.model_halo`). A tile is cut to the part inside the image, so
the
network's padding applies at the image border only, never at a tile border; DCSTFN runs on the
window aligned to the native coarse grid that lies inside the halo-extended tile. Weights load
once per worker (:meth:`LearnedMethod.load_state`); the prediction dates of a tile go through the
network as one batch; on ``gpu`` the arrays become CUDA torch tensors.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from stfcube.pipeline.engine.methods.arrays import inside_image
from stfcube.pipeline.engine.methods.base import (
    FusionMethod,
    InputSpec,
    ParamDoc,
    TileInputs,
    TileResult,
)
from stfcube.pipeline.engine.methods.registry import register
from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.learned import modeldir as md


@dataclass(frozen=True)
class LearnedParams:
    """``model``: the model directory; ``weights_sha256`` is filled from its config (so a
    retrained model is another run)."""

    model: str = ""
    weights_sha256: str = ""


@functools.lru_cache(maxsize=8)
def _config(model: str, digest: str) -> dict[str, Any]:
    """The model directory's checked config (cached per weights digest)."""
    return md.read_config(Path(model))


def _aligned(start: int, stop: int, offset: int, ratio: int, lo: int, hi: int) -> tuple[int, int]:
    """The widest run of whole coarse pixels (index range on the native block) inside the fine
    range ``[start, stop)`` and the native block's ``[lo, hi)`` (``offset``: fine position of
    native pixel 0)."""
    first = max(lo, -((offset - start) // ratio))
    last = min(hi, (stop - offset) // ratio)
    return first, last


@register
class LearnedMethod(FusionMethod[LearnedParams]):
    """A model trained by ``stfcube train`` (STFDCNN, DCSTFN or EDCSTFN)."""

    name = "learned"
    params_type = LearnedParams
    summary = "CNN trained on the cube by `stfcube train` (STFDCNN, DCSTFN, EDCSTFN): -p model=DIR"
    min_pairs = 1
    max_pairs = 2
    devices = frozenset({"cpu", "gpu"})
    cost_unit = "network weights applied"
    parameter_docs: ClassVar[Mapping[str, ParamDoc]] = {
        "model": ParamDoc("path", "a directory written by stfcube train", "the trained model"),
        "weights_sha256": ParamDoc("-", "filled automatically", "digest of the model's weights"),
    }

    def make_params(self, overrides: Mapping[str, Any] | None = None) -> LearnedParams:
        """The model directory, resolved and checked (config, intact weights, PyTorch)."""
        params = super().make_params(overrides)
        if not params.model:
            raise ConfigError("learned needs the model directory: -p model=MODEL_DIR")
        md.require_torch()
        path = Path(params.model).expanduser().resolve()
        digest = md.read_config(path)["weights_sha256"]
        return dataclasses.replace(params, model=str(path), weights_sha256=digest)

    def config(self, params: LearnedParams) -> dict[str, Any]:
        """The model directory's config."""
        return _config(params.model, params.weights_sha256)

    def check_cube(self, cube: xr.Dataset, cube_path: Path, params: LearnedParams) -> None:
        """Refuse a cube whose bands, scaling or coarse ratio differ from the model's."""
        md.check_cube(self.config(params), cube, Path(params.model), cube_path)

    def inputs(self, params: LearnedParams) -> InputSpec:
        if self.config(params)["model"] == "dcstfn":
            return InputSpec(
                fine_grid=frozenset({"fine"}), native=frozenset({"coarse", "coarse_pred"})
            )
        return InputSpec()

    def halo(self, params: LearnedParams) -> int:
        return int(self.config(params)["halo"])

    def cost(self, params: LearnedParams, n_pairs: int, n_bands: int) -> float:
        """About one multiply-add per weight, pair and fine pixel."""
        return 3e5 * (n_pairs + 1)

    def load_state(self, params: LearnedParams, device: str) -> Any:
        """The network, on the CPU or the CUDA device."""
        config = self.config(params)
        return md.load_model(Path(params.model), config, "cuda" if device == "gpu" else "cpu")

    def to_device(self, inputs: TileInputs, device: str) -> TileInputs:
        """Torch tensors (CUDA on ``gpu``); host arrays are shared, not copied, on the CPU."""
        import torch

        target = "cuda" if device == "gpu" else "cpu"
        return inputs.map_arrays(lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(target))

    def to_host(self, result: TileResult) -> TileResult:
        """NumPy arrays of the tile's prediction."""
        return TileResult(result.prediction.cpu().numpy())

    def fuse_tile(
        self,
        inputs: TileInputs,
        statistics: Mapping[str, np.ndarray],
        params: LearnedParams,
        state: Any,
    ) -> TileResult:
        import torch

        from stfcube.kernels.learned import DCSTFN, Pair, predict

        rows, cols = inside_image(inputs)
        scale, t = md.SCALE, inputs.tile
        if isinstance(state, DCSTFN):
            pairs, pred, pred_valid, rows, cols = _native_inputs(inputs, state.ratio, rows, cols)
        else:
            cut = (slice(None), slice(None), rows, cols)
            pairs = [
                Pair(inputs.fine[k : k + 1][cut] * scale, inputs.fine_valid[k : k + 1][cut[1:]],
                     inputs.coarse[k : k + 1][cut] * scale, inputs.coarse_valid[k : k + 1][cut[1:]])
                for k in range(len(inputs.fine))
            ]  # fmt: skip
            pred, pred_valid = inputs.coarse_pred[cut] * scale, inputs.coarse_pred_valid[cut[1:]]
        with torch.no_grad():
            out = predict(state, pairs, pred, pred_valid) / scale
        # the prediction on the fine block (NaN where the network did not run), then the tile
        block = torch.full((*out.shape[:2], *inputs.fine.shape[-2:]), torch.nan, device=out.device)
        block[..., rows, cols] = out
        h = inputs.halo
        return TileResult(block[..., h : h + t.row1 - t.row0, h : h + t.col1 - t.col0].float())


def _native_inputs(
    inputs: TileInputs, ratio: int, rows: slice, cols: slice
) -> tuple[list[Any], Any, Any, slice, slice]:
    """DCSTFN's pairs and prediction-date images on the window of whole coarse pixels inside
    the image part of the halo-extended tile (fine rows/cols of that window returned)."""
    from stfcube.kernels.learned import Pair

    assert inputs.native_inside is not None
    n0, n1, m0, m1 = inputs.native_inside
    i0, i1 = _aligned(rows.start, rows.stop, inputs.native_offset[0], ratio, n0, n1)
    j0, j1 = _aligned(cols.start, cols.stop, inputs.native_offset[1], ratio, m0, m1)
    f_rows = slice(inputs.native_offset[0] + i0 * ratio, inputs.native_offset[0] + i1 * ratio)
    f_cols = slice(inputs.native_offset[1] + j0 * ratio, inputs.native_offset[1] + j1 * ratio)
    nat, scale = inputs.native, md.SCALE
    c_cut = (slice(None), slice(None), slice(i0, i1), slice(j0, j1))
    f_cut = (slice(None), slice(None), f_rows, f_cols)
    pairs = [
        Pair(inputs.fine[k : k + 1][f_cut] * scale, inputs.fine_valid[k : k + 1][f_cut[1:]],
             nat["coarse"][k : k + 1][c_cut] * scale, nat["coarse_valid"][k : k + 1][c_cut[1:]])
        for k in range(len(inputs.fine))
    ]  # fmt: skip
    pred = nat["coarse_pred"][c_cut] * scale
    return pairs, pred, nat["coarse_pred_valid"][c_cut[1:]], f_rows, f_cols
