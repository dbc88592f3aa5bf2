"""Learned models (``stfcube train``) in the engine: ``--method learned -p model=MODEL_DIR``.

The model directory says which network it holds; its halo is the network's exact receptive
field (:func:`stfcube.kernels.learned.model_halo`). A tile is cut to the part inside the image,
so the network's padding applies at the image border only, never at a tile border; DCSTFN runs
on the window aligned to the native coarse grid that lies inside the halo-extended tile. Weights
load once per worker (:meth:`LearnedMethod.load_state`); the prediction dates of a tile go through
the network as one batch; on ``gpu`` the arrays become CUDA torch tensors.

GAN-STFM needs one fine reference and the prediction date's coarse image. Reference rule: for
each prediction date, the nearest in time of the fine images the pair rule picks (default
``nearest``: the last clear fine image before the date and the first after it, so the nearest
clear fine image; ties go to the earlier one), where a clear fine image is one with at least
``--min-pair-valid`` of its pixels valid, with or without a coarse image that day. Its
normalisation runs in one of two modes (``-p statistics=``): ``frozen`` (default) uses the
statistics averaged over training, so the halo is the network's receptive field (8 px) and
tiled output equals the whole image; ``window`` is the authors' inference, statistics of the
image the network sees, run on ``window``-pixel windows on a grid fixed to the image,
overlapping by ``overlap`` pixels and feathered together, with a halo of ``window`` pixels (so
tiled output again equals the whole image; the seams lie between windows).
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

from stfcube.pipeline.engine.methods.arrays import inside_image, tile_window
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

#: GAN-STFM's normalisation modes at inference.
STATISTICS = ("frozen", "window")


@dataclass(frozen=True)
class LearnedParams:
    """``model``: the model directory; ``weights_sha256`` is filled from its config (so a
    retrained model is another run); ``statistics``, ``window``, ``overlap``: GAN-STFM's
    inference mode (see the module doc)."""

    model: str = ""
    weights_sha256: str = ""
    statistics: str = "frozen"
    window: int = 256
    overlap: int = 64

    def __post_init__(self) -> None:
        if self.statistics not in STATISTICS:
            raise ValueError(f"statistics must be one of {', '.join(STATISTICS)}")
        if self.window < 16 or not 0 <= self.overlap <= self.window // 2:
            raise ValueError("window must be >= 16 and overlap within [0, window / 2]")


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
    summary = (
        "network trained on the cube by `stfcube train` (STFDCNN, DCSTFN, EDCSTFN, GAN-STFM): "
        "-p model=DIR"
    )
    min_pairs = 1
    max_pairs = 2
    devices = frozenset({"cpu", "gpu"})
    cost_unit = "network weights applied"
    parameter_docs: ClassVar[Mapping[str, ParamDoc]] = {
        "model": ParamDoc("path", "a directory written by stfcube train", "the trained model"),
        "weights_sha256": ParamDoc("-", "filled automatically", "digest of the model's weights"),
        "statistics": ParamDoc(
            "-",
            "frozen or window",
            "GAN-STFM's normalisation: frozen training averages (halo 8 px) or each window's "
            "own (the authors' inference; feathered windows). Reference: the nearest clear "
            "fine image of those the pair rule picks",
        ),
        "window": ParamDoc("fine px", ">= 16", "GAN-STFM window edge (statistics=window)"),
        "overlap": ParamDoc(
            "fine px", "0 to window / 2", "GAN-STFM window overlap, feathered (statistics=window)"
        ),
    }

    def make_params(self, overrides: Mapping[str, Any] | None = None) -> LearnedParams:
        """The model directory, resolved and checked (config, intact weights, PyTorch)."""
        params = super().make_params(overrides)
        if not params.model:
            raise ConfigError("learned needs the model directory: -p model=MODEL_DIR")
        md.require_torch()
        path = Path(params.model).expanduser().resolve()
        config = md.read_config(path)
        gan_only = {k: v for k, v in (overrides or {}).items() if k in ("statistics", "window",
                    "overlap")}  # fmt: skip
        if gan_only and config["model"] != "ganstfm":
            raise ConfigError(
                f"{', '.join(sorted(gan_only))}: GAN-STFM parameter(s), but {path} holds a "
                f"{config['model']} model"
            )
        return dataclasses.replace(params, model=str(path), weights_sha256=config["weights_sha256"])

    def config(self, params: LearnedParams) -> dict[str, Any]:
        """The model directory's config."""
        return _config(params.model, params.weights_sha256)

    def check_cube(self, cube: xr.Dataset, cube_path: Path, params: LearnedParams) -> None:
        """Refuse a cube whose bands, scaling or coarse ratio differ from the model's."""
        md.check_cube(self.config(params), cube, Path(params.model), cube_path)

    def inputs(self, params: LearnedParams) -> InputSpec:
        model = self.config(params)["model"]
        if model == "dcstfn":
            return InputSpec(
                fine_grid=frozenset({"fine"}), native=frozenset({"coarse", "coarse_pred"})
            )
        return InputSpec(pairs_need_coarse=model != "ganstfm")

    def halo(self, params: LearnedParams) -> int:
        if self.config(params)["model"] == "ganstfm" and params.statistics == "window":
            return params.window
        return int(self.config(params)["halo"])

    def cost(self, params: LearnedParams, n_pairs: int, n_bands: int) -> float:
        """About one multiply-add per weight, pair and fine pixel."""
        return 3e5 * (n_pairs + 1)

    def load_state(self, params: LearnedParams, device: str) -> Any:
        """The network, on the CPU or the CUDA device (GAN-STFM in its ``statistics`` mode)."""
        from stfcube.kernels.learned import GANSTFM

        config = self.config(params)
        model = md.load_model(Path(params.model), config, "cuda" if device == "gpu" else "cpu")
        if isinstance(model, GANSTFM):
            model.set_statistics(params.statistics)  # type: ignore[arg-type]
        return model

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

        from stfcube.kernels.learned import DCSTFN, GANSTFM, Pair, predict

        if isinstance(state, GANSTFM):
            return TileResult(_ganstfm_tile(inputs, params, state))
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


def _nearest_pairs(inputs: TileInputs) -> list[int]:
    """Per prediction date, the index of the nearest pair in time (ties: the earlier)."""
    pairs = np.asarray(inputs.pair_dates, dtype="datetime64[D]").astype(np.int64)
    dates = np.asarray(inputs.predict_dates, dtype="datetime64[D]").astype(np.int64)
    return [int(np.argmin(np.abs(pairs - d))) for d in dates]


def _ganstfm_tile(inputs: TileInputs, params: LearnedParams, model: Any) -> Any:
    """GAN-STFM's prediction of the tile, each date from its nearest reference (module doc)."""
    import torch

    from stfcube.kernels.learned import Pair, WindowGrid, predict

    rows, cols = inside_image(inputs)
    top, bottom, left, right = tile_window(inputs, rows, cols)
    windows = None
    if params.statistics == "window":
        assert inputs.image_shape is not None
        origin = (inputs.tile.row0 - inputs.halo + rows.start,
                  inputs.tile.col0 - inputs.halo + cols.start)  # fmt: skip
        region = (slice(top, bottom), slice(left, right))
        windows = WindowGrid(origin, inputs.image_shape, region, params.window, params.overlap)
    cut, scale = (slice(None), slice(None), rows, cols), md.SCALE
    choice = _nearest_pairs(inputs)
    out = torch.full((len(choice), len(inputs.bands), bottom - top, right - left), torch.nan,
                     device=inputs.fine.device)  # fmt: skip
    with torch.no_grad():
        for k in sorted(set(choice)):
            dates = [d for d, c in enumerate(choice) if c == k]
            ref = slice(k, k + 1)
            pair = Pair(inputs.fine[ref][cut] * scale, inputs.fine_valid[ref][cut[1:]],
                        inputs.coarse[ref][cut], inputs.coarse_valid[ref][cut[1:]])  # fmt: skip
            pred = inputs.coarse_pred[dates][cut] * scale
            fused = predict(model, [pair], pred, inputs.coarse_pred_valid[dates][cut[1:]], windows)
            out[dates] = fused if windows else fused[..., top:bottom, left:right]
    return (out / scale).float()
