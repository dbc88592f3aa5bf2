"""stfcube: spatiotemporal fusion of fine and coarse imagery into analysis-ready Zarr cubes.

One import namespace with three parts: :mod:`stfcube.kernels` (pure array functions, the fusion
methods' numerics), :mod:`stfcube.pipeline` (I/O, cubes, tiling, the engine, evaluation, the
command line) and :mod:`stfcube.flows` (Prefect flows over the pipeline's functions). This
module imports nothing heavy: ``dev.py`` reads the runtime defaults through it before the
virtual environment exists.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stfcube")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
