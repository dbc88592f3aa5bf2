"""Two numba intrinsics the CPU kernels need and numba's Python subset cannot express, and the
candidate-list append built on them.

* :func:`within_mask64` compares 64 consecutive array elements with a centre value in one
  vector operation and returns the result as the bits of a ``uint64`` (bit ``j`` = element
  ``start + j``). Written as plain numba, the same loop indexes with a signed, data-dependent
  start: numba's negative-index wraparound then keeps LLVM from proving the reads contiguous and
  it emits gathers, 5-10x slower. Here the LLVM IR is a single ``<64 x float>`` load and two
  ordered compares, which LLVM lowers to whatever the CPU has (two AVX-512 compares and a mask
  move on x86-64 with AVX-512, more instructions on AVX2 or NEON, same result everywhere).
* :func:`trailing_zeros` is LLVM's ``cttz`` (one ``tzcnt`` instruction): the index of the lowest
  set bit, 64 for zero, used to walk the set bits of a mask.
* :func:`append_set_bits` appends the positions of a mask's set bits to a candidate list: the
  step after :func:`within_mask64` in the STARFM and ESTARFM searches (plain ``@njit``, inlined
  into its caller).

The first two are ``numba.extending.intrinsic`` functions: callable from ``@njit`` code only,
inlined into the caller's machine code, compatible with numba's on-disk cache. Scope:
``within_mask64`` reads ``array[start:start + 64]`` *without bounds checks*; callers pad their
arrays so that every ``start`` they pass has 64 readable elements.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: Elements compared by one :func:`within_mask64` call (the bits of its ``uint64`` result).
MASK_BITS = 64


@intrinsic
def trailing_zeros(typingctx: Any, bits: types.Type) -> Any:
    """Number of trailing zero bits of a ``uint64`` (``64`` when ``bits == 0``).

    Parameters
    ----------
    bits
        ``uint64`` value.

    Returns
    -------
    uint64
        Index of the lowest set bit, or 64 for zero.
    """
    if bits != types.uint64:
        return None
    signature = types.uint64(types.uint64)

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        zero_is_defined = ir.Constant(ir.IntType(1), 0)
        return builder.cttz(args[0], zero_is_defined)

    return signature, codegen


@intrinsic
def within_mask64(
    typingctx: Any,
    array: types.Type,
    start: types.Type,
    centre: types.Type,
    threshold: types.Type,
) -> Any:
    """Bits ``j`` (0-63) set where ``|array[start + j] - centre| < threshold``.

    The difference is computed in the array's float type, as ``abs(a - c) < t`` would; a NaN
    element, centre or threshold gives 0 bits (the comparisons are ordered).

    Parameters
    ----------
    array
        1-D C-contiguous float32 or float64 array; ``array[start:start + 64]`` must exist (not
        checked).
    start
        Index of the first element compared.
    centre, threshold
        Scalars of the array's dtype.

    Returns
    -------
    uint64
        The comparison mask, element ``start + j`` in bit ``j``.
    """
    if not (
        isinstance(array, types.Array)
        and array.ndim == 1
        and array.layout == "C"
        and isinstance(array.dtype, types.Float)
        and isinstance(start, types.Integer)
    ):
        return None
    dtype = array.dtype
    signature = types.uint64(array, types.intp, dtype, dtype)

    def codegen(context: Any, builder: ir.IRBuilder, sig: Any, args: Any) -> Any:
        data, first, centre_value, threshold_value = args
        element = context.get_data_type(dtype)
        vector = ir.VectorType(element, MASK_BITS)
        base = context.make_array(sig.args[0])(context, builder, data).data
        pointer = builder.bitcast(builder.gep(base, [first]), vector.as_pointer())
        values = builder.load(pointer, align=context.get_abi_alignment(element))

        def broadcast(scalar: Any) -> Any:
            lanes = ir.Constant(vector, ir.Undefined)
            lanes = builder.insert_element(lanes, scalar, cgutils.int32_t(0))
            zeros = ir.Constant(ir.VectorType(ir.IntType(32), MASK_BITS), [0] * MASK_BITS)
            return builder.shuffle_vector(lanes, lanes, zeros)

        difference = builder.fsub(values, broadcast(centre_value))
        below = builder.fcmp_ordered("<", difference, broadcast(threshold_value))
        above = builder.fcmp_ordered(">", difference, broadcast(builder.fneg(threshold_value)))
        return builder.bitcast(builder.and_(below, above), ir.IntType(MASK_BITS))

    return signature, codegen


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def append_set_bits(bits: Any, first: Any, cell: Any, n: Any) -> Any:
    """Append ``first + j`` for every set bit ``j`` of ``bits``, lowest first; returns the new
    length of the list.

    The first four bits are written without a data-dependent branch (most window rows hold few
    candidates), so ``cell`` needs 3 spare entries after the last one appended. Inlined into the
    calling ``@njit`` function.

    Parameters
    ----------
    bits
        ``uint64`` mask (e.g. from :func:`within_mask64`).
    first
        Index of the element that bit 0 stands for (the caller's numbering).
    cell
        1-D integer array, the candidate list; entries ``n`` onwards are written.
    n
        Entries of ``cell`` in use.

    Returns
    -------
    int
        ``n`` plus the number of set bits.
    """
    one = np.uint64(1)
    for _ in range(4):
        cell[n] = first + trailing_zeros(bits)
        n += bits != 0
        bits &= bits - one
    while bits:
        cell[n] = first + trailing_zeros(bits)
        n += 1
        bits &= bits - one
    return n
