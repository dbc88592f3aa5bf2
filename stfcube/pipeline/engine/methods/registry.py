"""The registry of fusion methods, and the per-process cache of their loaded state.

Built-in methods register when first asked for; a plugin method is named ``"module:Class"``
(importable on every worker), so adding a method never means editing the engine.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from stfcube.pipeline.engine.methods.base import FusionMethod
from stfcube.pipeline.errors import ConfigError

#: Built-in methods: name -> module defining the class (imported on first use).
BUILTIN = {
    "starfm": "stfcube.pipeline.engine.methods.starfm",
    "nochange": "stfcube.pipeline.engine.methods.baselines",
    "coarse-residual": "stfcube.pipeline.engine.methods.baselines",
    "fitfc": "stfcube.pipeline.engine.methods.fitfc",
    "estarfm": "stfcube.pipeline.engine.methods.estarfm",
    "fsdaf": "stfcube.pipeline.engine.methods.fsdaf",
    "learned": "stfcube.pipeline.engine.methods.learned",
}

#: Registered method classes by name.
METHODS: dict[str, type[FusionMethod[Any]]] = {}


def register(cls: type[FusionMethod[Any]]) -> type[FusionMethod[Any]]:
    """Class decorator: make a method available to :func:`get_method` by its ``name``."""
    METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names of the built-in and registered methods, sorted."""
    return sorted({*BUILTIN, *METHODS})


def get_method(name: str) -> FusionMethod[Any]:
    """The method called ``name`` (case-insensitive), or the class ``"module:Class"``.

    Raises
    ------
    ConfigError
        For an unknown name or an unimportable plugin, listing the available methods.
    """
    if ":" in name:
        return _plugin(name)
    key = name.lower()
    if key not in METHODS and key in BUILTIN:
        importlib.import_module(BUILTIN[key])
    try:
        return METHODS[key]()
    except KeyError:
        known = ", ".join(available_methods())
        raise ConfigError(f"unknown fusion method {name!r}; available: {known}") from None


def _plugin(path: str) -> FusionMethod[Any]:
    module_name, _, class_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load the fusion method {path!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, FusionMethod)):
        raise ConfigError(f"{path!r} is not a FusionMethod subclass")
    return cls()


@functools.lru_cache(maxsize=8)
def method_state(name: str, params: Any, device: str) -> Any:
    """A method's :meth:`~FusionMethod.load_state`, loaded once per process and reused by every
    tile of every run with the same parameters (``params`` must be hashable: a frozen
    dataclass)."""
    method = get_method(name)
    return method.load_state(params, device)
