"""ESTARFM GPU path: the numba CUDA kernel under the simulator (CI) and on a real GPU (``gpu``).
The simulator must be on before numba is imported: that check runs in a fresh interpreter with
``NUMBA_ENABLE_CUDASIM=1``."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from helpers.cudasim import run_simulated
from stfcube.kernels.estarfm import EstarfmParams, estarfm

_SIMULATED = textwrap.dedent(
    """
    import json
    import numpy as np
    from numba.core import config
    from stfcube.kernels.estarfm import EstarfmParams, estarfm

    assert config.ENABLE_CUDASIM
    rng = np.random.default_rng(3)
    shape = (2, 3, 9, 11)
    fine = rng.normal(3000, 400, shape).round()
    coarse = fine + rng.normal(0, 200, shape)
    pred = coarse[:1] * 1.2 + rng.normal(0, 50, (1, 3, 9, 11))
    pred = np.concatenate([pred, pred * 0.9])
    pred[1, 0, 2:7, 2:7] = 30000.0  # predictions out of range
    valid = np.ones((2, 9, 11), bool)
    valid[1, 4, 5] = False
    params = EstarfmParams(half_window=2, num_class=1.0)
    report = {}
    for engine in ("cuda", "numba"):
        r = estarfm(fine, coarse, pred, params, coarse_pred_valid=valid, engine=engine)
        report[engine] = [r.prediction, r.code, r.count]
    gpu, cpu = report["cuda"], report["numba"]
    print(json.dumps({
        "prediction": bool(np.allclose(gpu[0], cpu[0], rtol=1e-12, equal_nan=True)),
        "code": bool((gpu[1] == cpu[1]).all()),
        "count": bool((gpu[2] == cpu[2]).all()),
        "codes_seen": sorted(set(np.unique(cpu[1]).tolist())),
    }))
    """
)


def test_cuda_kernel_matches_cpu_under_simulator() -> None:
    report = run_simulated(_SIMULATED)
    assert report["prediction"] and report["code"] and report["count"]
    assert report["codes_seen"] == [0, 1, 2, 3, 4]  # every path of the kernel ran


def test_cuda_engine_refuses_too_many_bands() -> None:
    from stfcube.kernels.estarfm import _cuda
    from stfcube.kernels.estarfm._cuda import MAX_BANDS
    from stfcube.kernels.estarfm._prepare import constants, prepare_tile

    shape = (2, MAX_BANDS + 1, 4, 4)
    ones = np.ones(shape)
    tile = prepare_tile(
        ones, ones, ones[:1], np.ones((4, 4), bool), np.ones((1, 4, 4), bool), 1, (0, 4, 0, 4)
    )
    with pytest.raises(ValueError, match=f"at most {MAX_BANDS} bands"):
        _cuda.predict(tile, constants(EstarfmParams(1), np.ones((2, MAX_BANDS + 1))))


@pytest.mark.gpu
def test_gpu_matches_cpu_on_cupy_arrays() -> None:
    import cupy

    rng = np.random.default_rng(9)
    shape = (2, 3, 96, 80)
    patches = np.kron(rng.normal(3000, 600, (2, 3, 12, 10)), np.ones((1, 1, 8, 8)))
    fine = patches + rng.normal(0, 80, shape)
    coarse = fine + rng.normal(0, 150, shape)
    pred = np.stack([coarse[0] * 1.15 + 40, coarse[1] * 0.9])
    for mode in ("seamless", "reference"):
        params = EstarfmParams(half_window=10, num_class=4.0, block_size=50, mode=mode)
        cpu = estarfm(fine, coarse, pred, params)
        gpu = estarfm(*(cupy.asarray(a) for a in (fine, coarse, pred)), params)
        assert isinstance(gpu.prediction, cupy.ndarray)
        np.testing.assert_allclose(cupy.asnumpy(gpu.prediction), cpu.prediction, rtol=1e-9)
        assert (cupy.asnumpy(gpu.code) == cpu.code).mean() > 0.999
        np.testing.assert_array_equal(cupy.asnumpy(gpu.count), cpu.count)
