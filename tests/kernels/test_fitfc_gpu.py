"""Fit-FC GPU path: the numba CUDA spatial filter under the simulator (CI) and on a real GPU
(``gpu``). The simulator must be on before numba is imported: that check runs in a fresh
interpreter with ``NUMBA_ENABLE_CUDASIM=1``."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from helpers.cudasim import run_simulated
from stfcube.kernels.fitfc import FitfcParams, fitfc, spatial_filter

_SIMULATED = textwrap.dedent(
    """
    import json
    import numpy as np
    from numba.core import config
    from stfcube.kernels.fitfc import FitfcParams, spatial_filter

    assert config.ENABLE_CUDASIM
    rng = np.random.default_rng(8)
    fine = rng.integers(0, 5, (3, 11, 13)).astype(float)  # many ties
    z2 = rng.normal(500, 80, (3, 11, 13))
    z2[0, 4, 4] = np.nan
    report = {}
    for mode in ("reference", "seamless"):
        params = FitfcParams(filter_radius=2, n_similar=5, mode=mode)
        gpu = spatial_filter(fine, z2, params, engine="cuda", window=(1, 10, 0, 13))
        cpu = spatial_filter(fine, z2, params, engine="numba", window=(1, 10, 0, 13))
        report[mode] = bool(np.allclose(gpu, cpu, rtol=1e-12, equal_nan=True))
    print(json.dumps(report))
    """
)


def test_cuda_kernel_matches_cpu_under_simulator() -> None:
    assert run_simulated(_SIMULATED) == {"reference": True, "seamless": True}


def test_cuda_engine_refuses_too_many_neighbours() -> None:
    from stfcube.kernels.fitfc._cuda import MAX_SIMILAR, filter_sums

    with pytest.raises(ValueError, match=f"at most {MAX_SIMILAR} neighbours"):
        filter_sums(
            np.ones((2, 30, 30)), np.ones((1, 30, 30)), np.ones(121), 65, False, (0, 1, 0, 1)
        )


@pytest.mark.gpu
def test_gpu_matches_cpu_on_cupy_arrays() -> None:
    import cupy

    rng = np.random.default_rng(9)
    fine = rng.normal(1000, 200, (3, 96, 80))
    coarse = fine.reshape(3, 12, 8, 10, 8).mean(axis=(2, 4))
    pred = coarse * rng.normal(1.1, 0.05, coarse.shape)
    params = FitfcParams(filter_radius=10, n_similar=20)
    cpu = fitfc(fine, coarse, pred, 8, params)
    gpu = fitfc(*(cupy.asarray(a) for a in (fine, coarse, pred)), 8, params)
    assert isinstance(gpu, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(gpu), cpu, rtol=1e-10)
    with pytest.raises(ValueError, match="reference engine runs on NumPy"):
        spatial_filter(cupy.asarray(fine), gpu, params, engine="reference")
