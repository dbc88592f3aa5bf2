"""Lazy re-exports for the stage packages (PEP 562), so importing a light submodule such as
``stfcube.pipeline.engine.cluster`` never imports the heavy stack behind the package's public
API."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` resolving each name of ``exports`` from its module on first use.

    Parameters
    ----------
    package
        The package's ``__name__`` (for the error message).
    exports
        Public name -> dotted module that defines it.
    """

    def __getattr__(name: str) -> Any:
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        return getattr(importlib.import_module(module), name)

    return __getattr__
