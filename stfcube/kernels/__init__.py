"""Fusion kernels: pure array functions (NumPy/numba on CPU, CuPy on GPU), no I/O."""

from stfcube.kernels.starfm import starfm

__all__ = ["starfm"]
