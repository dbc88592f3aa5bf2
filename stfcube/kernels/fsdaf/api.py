"""FSDAF (Zhu et al. 2016) as Zhu's IDL program computes it (update of 02/15/2019), one pair.

Steps (per band unless said otherwise; details and quirks in the modules named):

1. **classes** of F1: a user class map (``FSDAF_preclassification.pro``) or ISODATA
   (``FSDAF.pro``; :mod:`stfcube.kernels.fsdaf._isodata`);
2. **clipping** of F1 at the 0.01 % / 99.99 % quantiles and ``[dn_min, dn_max]``;
3. **class fractions** per coarse pixel (all 0 when background lies inside);
4. **unmixing**: per class the ``num_pure`` purest coarse pixels, their change trimmed to the
   10-90 % quantiles, box-constrained least squares without intercept -> class change;
5. **temporal prediction** ``L2_1 = F1 + change[class]``, and the **thin-plate spline** of C2
   through the coarse centres on the fine grid (:mod:`stfcube.kernels.fsdaf._tps`);
6. **residual** ``R = dC - mean(L2_1 - F1)`` per coarse pixel, **distributed** with the
   homogeneity index (weights capped at ``weight_cap``), clamped: ``change = F2_2 - F1``;
7. **final smoothing**: the ``n_similar`` most similar pixels of the (2w+1)^2 window (all bands
   within ``2 std / k`` of the target) average ``change`` with weights
   ``1 / ((1 + d/w)(S + 1))``; a prediction outside ``[dn_min, dn_max]`` falls back to
   ``F1 + C2 - C1`` clipped to it.

Modes (:data:`stfcube.kernels.fsdaf.params.MODES`): :func:`fsdaf_program` is the program's block
procedure (reference); :func:`fsdaf` with ``mode="seamless"`` computes the block-wise quantities
over the whole image and the spline locally, so a tile with a halo reproduces the whole image.

Units: data in any unit with ``dn_min``/``dn_max`` in it (the program's defaults 0 .. 10000
are reflectance x 10^4); w in fine pixels, ``tps_radius`` in coarse pixels. Nodata: NaN.

Engines (``engine=``, :mod:`stfcube.kernels._backend`) run the final smoothing, the per-pixel hot
loop:
``numba`` (CPU), ``cuda`` (numba CUDA kernel on CuPy arrays; the inputs are copied there),
``reference`` (NumPy, slow). The other steps are NumPy/SciPy array code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stfcube.kernels._arrays import real_array
from stfcube.kernels._backend import engine_module, is_cupy_array, resolve_backend, to_numpy
from stfcube.kernels.fsdaf._isodata import classify, isodata_centres
from stfcube.kernels.fsdaf._program import Smoother, block_classes, block_layout, run_program
from stfcube.kernels.fsdaf._seamless import Geometry, classes_of, global_statistics, predict_region
from stfcube.kernels.fsdaf.params import FsdafParams


def _image(array: Any, name: str) -> np.ndarray:
    """``array`` on the host as a float64 ``(band, y, x)`` image (checked)."""
    image: np.ndarray = real_array(np, to_numpy(array), name, ("band", "y", "x"))
    return image


def smoother(engine: str, on_gpu: bool = False) -> Smoother:
    """The final smoothing of ``engine`` (``auto``: CUDA for GPU inputs, else numba)."""
    import numpy

    xp: Any = numpy
    if on_gpu:
        import cupy

        xp = cupy
    backend = resolve_backend(engine, xp)
    smooth: Smoother = engine_module("stfcube.kernels.fsdaf", backend).smooth_sums
    return smooth


def isodata_classes(
    fine: Any, params: FsdafParams | None = None, usable: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """ISODATA classification of F1.

    Parameters
    ----------
    fine
        F1 ``(band, y, x)``.
    params
        ISODATA parameters (``min_classes`` .. ``isodata_sample``).
    usable
        ``(y, x)`` bool, the pixels classified and fitted (default: finite in every band).

    Returns
    -------
    classes, centres
        ``(y, x)`` int16 classes 1 .. k (0 where not usable) and the ``(k, band)`` centres.
    """
    params = params or FsdafParams()
    f1 = _image(fine, "fine")
    mask = np.isfinite(f1).all(axis=0) if usable is None else np.asarray(usable, dtype=bool)
    centres = isodata_centres(f1[:, mask].T, params)
    return classify(f1, centres, mask), centres


def fsdaf_program(
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    params: FsdafParams | None = None,
    *,
    classes: Any = None,
    engine: str = "auto",
) -> np.ndarray:
    """The reference mode on a whole image: Zhu's IDL program, block by block.

    Parameters
    ----------
    fine
        F1 ``(band, y, x)`` (no NaN: the program has no nodata but its ``background`` value).
    coarse, coarse_pred
        C1 and C2 on the fine grid ``(band, y, x)``, as the program reads them.
    params
        Default :class:`FsdafParams` (the program's; ``truncate=True`` for its integer cast).
    classes
        ``(y, x)`` integer class map (1 .. k; 0: unclassified), or ``None`` for ISODATA on the
        non-background pixels.
    engine
        Final-smoothing engine: ``"auto"``, ``"numba"``, ``"cuda"`` or ``"reference"``.

    Returns
    -------
    ndarray
        ``(band, y, x)`` float64 prediction.
    """
    params = params or FsdafParams()
    f1 = _image(fine, "fine")
    c1, c2 = _image(coarse, "coarse"), _image(coarse_pred, "coarse_pred")
    if c1.shape != f1.shape or c2.shape != f1.shape:
        raise ValueError(f"coarse {c1.shape}, coarse_pred {c2.shape} and fine {f1.shape} differ")
    if classes is None:
        background = f1[params.background_band] == params.background
        class_map = isodata_classes(f1, params, ~background)[0]
    else:
        class_map = np.asarray(to_numpy(classes))
    shape = (f1.shape[1], f1.shape[2])
    return run_program(
        (f1, c1, c2, class_map),
        params,
        smoother(engine, is_cupy_array(fine)),
        origin=(0, 0),
        image_shape=shape,
        window=(0, shape[0], 0, shape[1]),
        last_block_classes=last_block_classes(f1, class_map, params),
    ).prediction


def last_block_classes(fine: np.ndarray, classes: np.ndarray, params: FsdafParams) -> int:
    """Classes present in the image's last block (the program's final-step divisor)."""
    r0, r1, c0, c1 = block_layout((fine.shape[1], fine.shape[2]), params)[-1].ext
    block = block_classes(fine[:, r0:r1, c0:c1], np.asarray(classes)[r0:r1, c0:c1], params)
    return int(block.max(initial=0))


def fsdaf(
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    ratio: int,
    params: FsdafParams | None = None,
    *,
    classes: Any = None,
    offset: tuple[int, int] = (0, 0),
    engine: str = "auto",
) -> np.ndarray:
    """The seamless mode on a whole image (coarse images on their native grid).

    Parameters
    ----------
    fine
        F1 ``(band, y, x)``, NaN = invalid.
    coarse, coarse_pred
        C1 and C2 ``(band, cy, cx)`` on the native coarse grid (NaN = invalid), covering the
        fine image.
    ratio
        Fine pixels per coarse pixel.
    params
        Default :class:`FsdafParams` (``mode`` is ignored: this is the seamless procedure).
    classes
        ``(y, x)`` integer class map (0 .. 255; 0: unclassified), or ``None`` for ISODATA.
    offset
        ``(row, col)`` in fine pixels of the coarse grid's corner relative to the fine
        image's (<= 0).
    engine
        Final-smoothing engine.

    Returns
    -------
    ndarray
        ``(band, y, x)`` float64 prediction (NaN where F1 is invalid).
    """
    params = params or FsdafParams()
    f1 = _image(fine, "fine")
    c1, c2 = _image(coarse, "coarse"), _image(coarse_pred, "coarse_pred")
    if c1.shape != c2.shape or c1.shape[0] != f1.shape[0]:
        raise ValueError(f"coarse {c1.shape} and coarse_pred {c2.shape} must match fine's bands")
    geometry = Geometry(int(ratio), offset)
    class_map = None if classes is None else np.asarray(to_numpy(classes))
    stats = global_statistics(f1, class_map, c1, c2[None], geometry, params)
    labels = classes_of(f1, class_map, stats["centres"])
    window = (0, f1.shape[1], 0, f1.shape[2])
    smooth = smoother(engine, is_cupy_array(fine))
    return predict_region(f1, labels, c1, c2, geometry, stats, 0, params, smooth, window).prediction
