"""The fusion-method interface of the tiled engine, and the registry of methods.

A method tells the engine four things; the engine does everything else (pair selection,
reading tiles with halos, scheduling, writing, resuming):

1. **its parameters** (:meth:`FusionMethod.make_params`), validated once, recorded in the output;
2. **its halo** (:meth:`FusionMethod.halo`): fine pixels of context each tile needs on every side
   so that a tiled run equals a whole-image run;
3. **its global statistics** (:meth:`FusionMethod.global_statistics`): lazy dask reductions over
   whole images, computed once before any tile runs and handed to every tile;
4. **its tile kernel** (:meth:`FusionMethod.fuse_tile`): plain arrays of one halo-extended tile in,
   the tile's interior out.

How the methods to come map onto it (see ``docs/design.md``):

- ESTARFM: two pairs, all bands at once (``fuse_tile`` gets every band), halo = half window,
  global statistics = per-band, per-pair standard deviations for the similarity thresholds.
- FSDAF: class map as a static input, halo = whole coarse pixels plus the spline/IDW support,
  global statistics = per-class unmixing on the coarse grid.
- Fit-FC: regression on the native coarse grid, halo = (regression window + bicubic support)
  coarse pixels + the spatial-filter radius.
- Learned models: halo = the receptive field, weights loaded once per worker by the method object.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import dask
import dask.array as da
import numpy as np

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class TileInputs:
    """The arrays of one halo-extended tile, as NumPy or CuPy arrays.

    Every spatial array covers the tile plus ``halo`` pixels on each side; pixels outside the
    image are NaN in the data and ``False`` in the validity masks.

    Attributes
    ----------
    fine, coarse
        (pairs, bands, y, x) float32: fine and coarse images of the input pairs.
    fine_valid, coarse_valid
        (pairs, y, x) bool.
    coarse_pred
        (dates, bands, y, x) float32: coarse images at the prediction dates.
    coarse_pred_valid
        (dates, y, x) bool.
    halo
        Context pixels on each side; the kernel returns the ``[halo:-halo, halo:-halo]`` interior.
    """

    fine: Any
    fine_valid: Any
    coarse: Any
    coarse_valid: Any
    coarse_pred: Any
    coarse_pred_valid: Any
    halo: int


@dataclass(frozen=True)
class TileResult:
    """A tile's prediction (dates, bands, y, x) float32 (NaN = fill) and quality (uint16)."""

    prediction: np.ndarray
    quality: np.ndarray


class FusionMethod(ABC):
    """Interface every fusion method implements for the tiled engine."""

    #: Name used on the command line and recorded in the output.
    name: ClassVar[str]
    #: Fewest and most input pairs one prediction may use.
    min_pairs: ClassVar[int] = 1
    max_pairs: ClassVar[int] = 2

    @abstractmethod
    def make_params(self, overrides: Mapping[str, Any] | None = None) -> Any:
        """Validated parameters from defaults and user ``overrides`` (unknown keys are errors)."""

    @abstractmethod
    def halo(self, params: Any) -> int:
        """Fine pixels of context a tile needs on every side for tiled == whole image."""

    @abstractmethod
    def global_statistics(
        self, fine: da.Array, fine_valid: da.Array, params: Any
    ) -> dict[str, da.Array]:
        """Lazy whole-image statistics of one pair set.

        Parameters
        ----------
        fine
            (pairs, bands, y, x) float32 dask array of the pairs' fine images (NaN = invalid).
        fine_valid
            (pairs, y, x) bool dask array.
        params
            The method's parameters.

        Returns
        -------
        dict of str to dask arrays
            Computed once by the engine (numpy results) and passed to every :meth:`fuse_tile`.
        """

    @abstractmethod
    def fuse_tile(
        self, inputs: TileInputs, statistics: Mapping[str, np.ndarray], params: Any
    ) -> TileResult:
        """Predict one tile's interior from its halo-extended inputs."""

    def describe_params(self, params: Any) -> dict[str, Any]:
        """JSON-serialisable view of ``params`` for provenance and the resume fingerprint."""
        return {k: _jsonable(v) for k, v in dataclasses.asdict(params).items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class StarfmMethod(FusionMethod):
    """STARFM (Gao et al. 2006) as the USDA reference program computes it (``mode="usda"``).

    Per band, with the global slice thresholds (one per pair and band) computed over whole
    images, so tiled output is identical to the reference's whole-image output.
    """

    name = "starfm"
    min_pairs = 1
    max_pairs = 2

    def make_params(self, overrides: Mapping[str, Any] | None = None) -> Any:
        from kernels.starfm import StarfmParams

        fields = {f.name for f in dataclasses.fields(StarfmParams)}
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ConfigError(
                f"unknown STARFM parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(fields))}"
            )
        if "data_range" in overrides:
            overrides["data_range"] = tuple(overrides["data_range"])
        try:
            return StarfmParams(**overrides)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid STARFM parameters: {exc}") from exc

    def halo(self, params: Any) -> int:
        return int(params.halo)

    def global_statistics(
        self, fine: da.Array, fine_valid: da.Array, params: Any
    ) -> dict[str, da.Array]:
        from kernels.starfm import slice_moments

        def block_moments(fine_block: np.ndarray, valid_block: np.ndarray) -> np.ndarray:
            # fine_block (pairs, bands, y, x), valid_block (pairs, y, x) -> (pairs, bands, 3)
            per_band = [
                np.stack(slice_moments(fine_block[:, b], valid_block, params=params), axis=-1)
                for b in range(fine_block.shape[1])
            ]
            return np.stack(per_band, axis=1)

        fine = fine.rechunk({0: -1, 1: -1})
        valid = fine_valid.rechunk((-1, fine.chunks[2], fine.chunks[3]))
        shape = (fine.shape[0], fine.shape[1], 3)
        partial = [
            da.from_delayed(dask.delayed(block_moments)(f, v), shape=shape, dtype=np.float64)
            for f, v in zip(fine.to_delayed().ravel(), valid.to_delayed().ravel(), strict=True)
        ]
        return {"moments": da.stack(partial).sum(axis=0)}

    def fuse_tile(
        self, inputs: TileInputs, statistics: Mapping[str, np.ndarray], params: Any
    ) -> TileResult:
        from kernels.starfm import slices_from_moments, starfm_tile

        xp = _array_module(inputs.fine)
        moments = statistics["moments"]  # (pairs, bands, 3)
        n_bands = inputs.fine.shape[1]
        predictions, qualities = [], []
        for band in range(n_bands):
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
        return TileResult(xp.stack(predictions, axis=1), xp.stack(qualities, axis=1))


def _array_module(array: Any) -> Any:
    """``cupy`` for CuPy arrays, else ``numpy``."""
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


#: Registered methods by name.
METHODS: dict[str, type[FusionMethod]] = {StarfmMethod.name: StarfmMethod}


def get_method(name: str) -> FusionMethod:
    """The method registered as ``name`` (case-insensitive); a clear error for unknown names."""
    try:
        return METHODS[name.lower()]()
    except KeyError:
        known = ", ".join(sorted(METHODS))
        raise ConfigError(f"unknown fusion method {name!r}; available: {known}") from None
