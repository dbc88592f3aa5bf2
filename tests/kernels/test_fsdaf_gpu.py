"""FSDAF GPU path: the numba CUDA similar-pixel smoothing under the simulator (CI) and on a real
GPU (``gpu``). The simulator must be on before numba is imported: that check runs in a fresh
interpreter with ``NUMBA_ENABLE_CUDASIM=1``."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from helpers.cudasim import run_simulated
from stfcube.kernels.fsdaf import FsdafParams, fsdaf

_SIMULATED = textwrap.dedent(
    """
    import json
    import numpy as np
    from numba.core import config
    from stfcube.kernels.fsdaf import _cuda, _numba

    assert config.ENABLE_CUDASIM
    rng = np.random.default_rng(3)
    fine = rng.integers(1, 6, (2, 9, 10)).astype(float)  # many ties
    change = rng.normal(0, 50, (2, 9, 10))
    change[1, 4, 4] = np.nan
    fine[0, 2, 7] = np.nan
    args = (fine, change, np.array([2.5, 2.0]), 2, 5, (1, 8, 0, 10))
    gpu, cpu = _cuda.smooth_sums(*args), _numba.smooth_sums(*args)
    print(json.dumps({"equal": bool(np.allclose(gpu, cpu, rtol=1e-12, equal_nan=True))}))
    """
)


def test_cuda_kernel_matches_cpu_under_simulator() -> None:
    assert run_simulated(_SIMULATED) == {"equal": True}


def test_cuda_engine_refuses_too_many_similar_pixels() -> None:
    from stfcube.kernels.fsdaf._cuda import MAX_SIMILAR, smooth_sums

    with pytest.raises(ValueError, match=f"at most {MAX_SIMILAR} similar pixels"):
        smooth_sums(np.ones((1, 30, 30)), np.ones((1, 30, 30)), np.ones(1), 10, 65, (0, 1, 0, 1))


@pytest.mark.gpu
def test_gpu_matches_cpu() -> None:
    rng = np.random.default_rng(9)
    classes = (np.indices((96, 80)).sum(axis=0) // 11) % 3 + 1
    fine = 1000.0 * classes[None] + rng.integers(-50, 50, (3, 96, 80))
    coarse = fine.reshape(3, 12, 8, 10, 8).mean(axis=(2, 4))
    pred = coarse * rng.normal(1.1, 0.05, coarse.shape)
    params = FsdafParams(window_radius=10, scale_factor=8, tps_radius=3)
    cpu = fsdaf(fine, coarse, pred, 8, params, classes=classes, engine="numba")
    gpu = fsdaf(fine, coarse, pred, 8, params, classes=classes, engine="cuda")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-10)
