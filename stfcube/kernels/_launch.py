"""Launch geometry shared by the CUDA engines: one thread per output pixel, in 2-D blocks.

Every engine's kernel reads its pixel as ``x, y = cuda.grid(2)`` and returns at once when that
lies outside its output, so a grid may overhang the output by up to one block each way.
"""

from __future__ import annotations

#: Threads per block along (x, y): 128 threads, 16 consecutive columns per row of the block.
BLOCK = (16, 8)


def launch_grid(rows: int, cols: int) -> tuple[int, int]:
    """Blocks along (x, y) that cover an output of ``rows x cols`` pixels with :data:`BLOCK`.

    Parameters
    ----------
    rows, cols
        Output pixels along y and x (``>= 0``).

    Returns
    -------
    tuple of int
        ``(ceil(cols / 16), ceil(rows / 8))``, at least 1 each (an empty output launches one
        block whose threads all return).
    """
    return max(1, -(-cols // BLOCK[0])), max(1, -(-rows // BLOCK[1]))
