"""stfcube pipeline: I/O, cubes, tiling and orchestration around the fusion kernels."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stfcube")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
