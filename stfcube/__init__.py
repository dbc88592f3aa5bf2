"""stfcube: spatiotemporal fusion of fine and coarse imagery into analysis-ready Zarr cubes.

One import namespace with three parts: :mod:`stfcube.kernels` (pure array functions, the fusion
methods' numerics), :mod:`stfcube.pipeline` (I/O, cubes, tiling, the engine, evaluation, the
command line) and :mod:`stfcube.flows` (Prefect flows over the pipeline's functions), plus
:mod:`stfcube.xr`, the kernels on ``xarray.DataArray`` s. The Python API's entry points are
re-exported here: :func:`fuse`, :func:`evaluate` (paths or ``xarray.Dataset`` s) and
:func:`open_fused`. This module imports nothing heavy (they load on first use): ``dev.py``
reads the runtime defaults through it before the virtual environment exists.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from stfcube.pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from stfcube.pipeline.engine.run import fuse as fuse
    from stfcube.pipeline.evaluate.inputs import open_fused as open_fused
    from stfcube.pipeline.evaluate.run import evaluate as evaluate

try:
    __version__ = version("stfcube")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    "fuse": "stfcube.pipeline.engine.run",
    "evaluate": "stfcube.pipeline.evaluate.run",
    "open_fused": "stfcube.pipeline.evaluate.inputs",
}
__all__ = ["__version__", *sorted(_EXPORTS)]
__getattr__ = lazy_exports(__name__, _EXPORTS)
