"""The method interface of the tiled engine: what a fusion method declares; the engine does the
rest.

A method is a :class:`FusionMethod` subclass, generic in its parameter type ``P`` (a frozen
dataclass). It declares:

1. **parameters**: the dataclass, its defaults and :attr:`FusionMethod.parameter_docs` (units,
   valid range, meaning); :meth:`FusionMethod.make_params` validates user overrides generically
   (``stfcube methods`` lists them);
2. **pair rule**: :attr:`~FusionMethod.min_pairs`, :attr:`~FusionMethod.max_pairs` (``None``: any
   number, for time-series methods) and the default rule; dates with too few usable pairs are
   skipped and reported, not fatal;
3. **inputs** (:meth:`~FusionMethod.inputs`, an :class:`InputSpec`): which fine-grid arrays, which
   arrays on the cube's native coarse grid (with a halo in coarse pixels), which static layers;
4. **halo** in fine pixels and a **cost** per fine pixel and date (the planner's model);
5. **global statistics** over lazy whole images of a pair group (fine, coarse and coarse at the
   prediction dates), computed once before any tile;
6. **output layers** besides the common ``fused`` layer (e.g. STARFM's candidate count);
7. **devices** it runs on and how its arrays get there (:meth:`~FusionMethod.to_device`: NumPy,
   CuPy or torch tensors; the engine hands over host arrays and takes host arrays back);
8. **state loaded once per worker process** (:meth:`~FusionMethod.load_state`: model weights,
   compiled kernels), cached by :func:`stfcube.pipeline.engine.methods.registry.method_state`;
9. the **tile kernel** (:meth:`~FusionMethod.fuse_tile`): one halo-extended tile in, its interior
   out.

Nothing in the interface assumes at most two pairs: arrays carry a pairs axis of any length.
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import dask.array as da
import numpy as np

from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.geometry.tiling import Tile
from stfcube.pipeline.store.fused import OutputLayer

#: A method's parameter type (a frozen dataclass).
P = TypeVar("P")

#: Fine-grid arrays a method may ask for (each with its validity mask).
FINE_GRID_INPUTS = frozenset({"fine", "coarse", "coarse_pred"})
#: Arrays a method may ask for on the cube's native coarse grid.
NATIVE_INPUTS = frozenset({"coarse", "coarse_pred"})


@dataclass(frozen=True)
class ParamDoc:
    """How ``stfcube methods`` documents one parameter."""

    units: str
    valid: str
    help: str


@dataclass(frozen=True)
class InputSpec:
    """The cube data one tile of a method needs.

    Attributes
    ----------
    fine_grid
        Which of ``fine`` (pairs), ``coarse`` (pairs) and ``coarse_pred`` (prediction dates) are
        read on the fine grid, halo-extended by :meth:`FusionMethod.halo`.
    native
        Which of ``coarse`` and ``coarse_pred`` are read on the cube's native coarse grid
        (``coarse_native``); the cube must have it.
    native_halo
        Coarse pixels of context around the coarse pixels that cover the halo-extended tile.
    static
        Names of time-less cube variables, ``(y, x)`` or ``(band, y, x)``, read halo-extended
        (e.g. a class map).
    pairs_need_coarse
        A pair is a fine image with a coarse image of (about) the same date; ``False``: any
        usable fine image serves (methods that use the fine image alone as reference).
    """

    fine_grid: frozenset[str] = FINE_GRID_INPUTS
    native: frozenset[str] = frozenset()
    native_halo: int = 0
    static: tuple[str, ...] = ()
    pairs_need_coarse: bool = True

    def __post_init__(self) -> None:
        if not self.fine_grid <= FINE_GRID_INPUTS or not self.native <= NATIVE_INPUTS:
            raise ValueError(f"unknown inputs in {self}")
        if self.native_halo < 0:
            raise ValueError("native_halo must be >= 0")


@dataclass(frozen=True)
class StatisticsInputs:
    """Lazy whole images of one pair group, for :meth:`FusionMethod.global_statistics`.

    Data ``(n, band, y, x)`` float32 (NaN = invalid), masks ``(n, y, x)`` bool, as dask arrays
    in the pairs' / prediction dates' order; ``native`` holds the same on the native coarse grid
    (keys ``coarse``, ``coarse_valid``, ``coarse_pred``, ``coarse_pred_valid``) when the cube has
    one, ``static`` the time-less layers the method asked for.
    """

    fine: da.Array
    fine_valid: da.Array
    coarse: da.Array
    coarse_valid: da.Array
    coarse_pred: da.Array
    coarse_pred_valid: da.Array
    pair_dates: tuple[np.datetime64, ...]
    predict_dates: tuple[np.datetime64, ...]
    native: Mapping[str, da.Array] = field(default_factory=dict)
    static: Mapping[str, da.Array] = field(default_factory=dict)


@dataclass(frozen=True)
class TileInputs:
    """The arrays of one halo-extended tile and where it lies.

    Fine-grid data are ``(n, band, y, x)`` float32 and masks ``(n, y, x)`` bool, covering the tile
    plus ``halo`` pixels on each side; pixels outside the image are NaN / ``False``. Arrays the
    method did not ask for are ``None``.

    Attributes
    ----------
    fine, fine_valid, coarse, coarse_valid
        The pairs' images (``n`` = pairs).
    coarse_pred, coarse_pred_valid
        The coarse images of the prediction dates (``n`` = dates).
    halo
        Context pixels on each side; the kernel returns the ``[halo:-halo, halo:-halo]`` interior.
    tile
        The tile (its rows and columns in the image).
    pair_dates, predict_dates
        The dates of the pairs and of the predictions.
    bands
        Band names.
    native
        Native-grid blocks (``coarse``, ``coarse_valid``, ``coarse_pred``, ``coarse_pred_valid``)
        covering the halo-extended tile plus the method's ``native_halo``.
    native_offset
        ``(row, col)``, in fine pixels, of the native block's top-left corner relative to the
        halo-extended tile's top-left corner (<= 0).
    ratio
        Fine pixels per coarse pixel of the native grid (``None`` without one).
    static
        The static layers asked for, halo-extended.
    image_shape
        ``(rows, cols)`` of the whole fine image (for methods whose edge rule needs the border).
    native_inside
        ``(row0, row1, col0, col1)``: the rows and columns of the native block that lie on the
        native grid (the rest is outside the image).
    """

    fine: Any
    fine_valid: Any
    coarse: Any
    coarse_valid: Any
    coarse_pred: Any
    coarse_pred_valid: Any
    halo: int
    tile: Tile
    pair_dates: tuple[np.datetime64, ...]
    predict_dates: tuple[np.datetime64, ...]
    bands: tuple[str, ...]
    native: Mapping[str, Any] = field(default_factory=dict)
    native_offset: tuple[int, int] = (0, 0)
    ratio: int | None = None
    static: Mapping[str, Any] = field(default_factory=dict)
    image_shape: tuple[int, int] | None = None
    native_inside: tuple[int, int, int, int] | None = None

    def map_arrays(self, convert: typing.Callable[[Any], Any]) -> TileInputs:
        """A copy with every array passed through ``convert`` (e.g. to a device)."""

        def apply(value: Any) -> Any:
            return None if value is None else convert(value)

        fields = ("fine", "fine_valid", "coarse", "coarse_valid", "coarse_pred")
        return dataclasses.replace(
            self,
            **{name: apply(getattr(self, name)) for name in (*fields, "coarse_pred_valid")},
            native={k: convert(v) for k, v in self.native.items()},
            static={k: convert(v) for k, v in self.static.items()},
        )


@dataclass(frozen=True)
class TileResult:
    """A tile's prediction ``(dates, band, y, x)`` float32 (NaN = no prediction) and the
    method's own layers by name (shapes as declared by :class:`OutputLayer`)."""

    prediction: Any
    layers: Mapping[str, Any] = field(default_factory=dict)


class FusionMethod(ABC, Generic[P]):
    """Interface every fusion method implements for the tiled engine (see the module doc)."""

    #: Name used on the command line and recorded in the output.
    name: ClassVar[str]
    #: One line for ``stfcube methods``.
    summary: ClassVar[str]
    #: The parameter dataclass (frozen; validates itself in ``__post_init__``).
    params_type: ClassVar[type]
    #: Units, valid range and meaning of every parameter.
    parameter_docs: ClassVar[Mapping[str, ParamDoc]]
    #: Fewest and most pairs one prediction uses (``None``: no upper bound).
    min_pairs: ClassVar[int] = 1
    max_pairs: ClassVar[int | None] = 2
    #: Pair rule used when the user gives none.
    default_pairs: ClassVar[str | int] = "nearest"
    #: Devices the method runs on.
    devices: ClassVar[frozenset[str]] = frozenset({"cpu"})
    #: What :meth:`cost` counts (for ``stfcube plan``).
    cost_unit: ClassVar[str] = "operations"
    #: Keys of :meth:`global_statistics` whose first axis is the group's prediction dates (in
    #: ``StatisticsInputs.predict_dates`` order). A tile task predicting some of those dates (a
    #: batch, or a run of dates cut to fill the cores) gets only its dates' rows of them.
    per_date_statistics: ClassVar[frozenset[str]] = frozenset()

    def make_params(self, overrides: Mapping[str, Any] | None = None) -> P:
        """Validated parameters from the defaults and user ``overrides``.

        Values given as text (command line, YAML) are converted to the field's type: numbers,
        booleans, and tuples written ``"a,b"``.

        Raises
        ------
        ConfigError
            For an unknown name or an invalid value, naming the parameter and its valid range.
        """
        fields = {f.name: f for f in dataclasses.fields(self.params_type)}
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise ConfigError(
                f"unknown {self.name} parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(fields))} (see `stfcube methods {self.name}`)"
            )
        converted = {}
        for key, value in overrides.items():
            default = fields[key].default
            try:
                converted[key] = coerce_like(value, default)
            except (TypeError, ValueError) as exc:
                raise ConfigError(self._bad_value(key, value, exc)) from None
        try:
            return typing.cast(P, self.params_type(**converted))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid {self.name} parameters: {exc}") from None

    def _bad_value(self, key: str, value: Any, exc: Exception) -> str:
        doc = self.parameter_docs.get(key)
        valid = f" (valid: {doc.valid})" if doc else ""
        return f"invalid {self.name} parameter {key}={value!r}: {exc}{valid}"

    def describe_params(self, params: P) -> dict[str, Any]:
        """JSON-serialisable view of ``params`` for provenance and the resume fingerprint."""
        return {k: _jsonable(v) for k, v in dataclasses.asdict(params).items()}  # type: ignore[call-overload]

    def check_cube(self, cube: Any, cube_path: Path, params: P) -> None:
        """Refuse a cube the parameters do not fit, before anything is written (default: any)."""

    def inputs(self, params: P) -> InputSpec:
        """The cube data a tile needs (default: the fine-grid pairs and prediction dates)."""
        return InputSpec()

    @abstractmethod
    def halo(self, params: P) -> int:
        """Fine pixels of context a tile needs on every side for tiled == whole image."""

    @abstractmethod
    def cost(self, params: P, n_pairs: int, n_bands: int) -> float:
        """Work per fine pixel and prediction date, in :attr:`cost_unit` (the planner's model)."""

    def global_statistics(self, inputs: StatisticsInputs, params: P) -> dict[str, da.Array]:
        """Lazy whole-image statistics of one pair group (default: none).

        The engine computes them once, before any tile, and hands the NumPy results to every
        :meth:`fuse_tile` of the group.
        """
        return {}

    def output_layers(self, params: P) -> tuple[OutputLayer, ...]:
        """Layers written beside ``fused`` (default: none)."""
        return ()

    def load_state(self, params: P, device: str) -> Any:
        """State loaded once per worker process and reused by every tile (default: none)."""
        return None

    def to_device(self, inputs: TileInputs, device: str) -> TileInputs:
        """Move a tile's host arrays to the arrays the kernel takes (default: CuPy on ``gpu``)."""
        if device != "gpu":
            return inputs
        import cupy

        return inputs.map_arrays(cupy.asarray)

    def to_host(self, result: TileResult) -> TileResult:
        """NumPy arrays of a tile's result (CuPy arrays are copied back; NumPy passes through)."""
        from stfcube.kernels._backend import to_numpy

        return TileResult(
            to_numpy(result.prediction), {k: to_numpy(v) for k, v in result.layers.items()}
        )

    @abstractmethod
    def fuse_tile(
        self, inputs: TileInputs, statistics: Mapping[str, np.ndarray], params: P, state: Any
    ) -> TileResult:
        """Predict one tile's interior from its halo-extended inputs."""


def coerce_like(value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default`` (text from a command line or YAML).

    Raises
    ------
    ValueError
        When the text does not read as that type (e.g. one number for a pair).
    """
    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, int | float) or not hasattr(items, "__len__"):
            raise ValueError(f"expected {len(default)} values written 'a,b'")
        if len(items) != len(default):
            raise ValueError(f"expected {len(default)} values, got {len(items)}")
        return tuple(coerce_like(v, d) for v, d in zip(items, default, strict=True))
    if isinstance(default, bool):
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError("expected true or false")
            return lowered in {"true", "1", "yes"}
        return value
    if isinstance(default, int | float) and isinstance(value, str):
        number = float(value)  # the dataclass checks integer fields itself
        return int(number) if isinstance(default, int) and number.is_integer() else number
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
