"""STARFM GPU path: the numba CUDA kernel under the simulator (CI) and on a real GPU (``gpu``).

The simulator must be switched on before numba is imported, so those checks run in a fresh
interpreter with ``NUMBA_ENABLE_CUDASIM=1`` and compare the CUDA kernel with the numba CPU kernel
bit for bit on small scenes (24x24, window 10).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from helpers.cudasim import run_simulated
from stfcube.kernels import starfm

_SIMULATED = textwrap.dedent(
    """
    import json
    import numpy as np
    from numba.core import config
    from stfcube.kernels import starfm

    assert config.ENABLE_CUDASIM
    rng = np.random.default_rng(4)
    patches = np.kron(rng.integers(500, 4000, (7, 7)), np.ones((4, 4), np.int64))[:24, :24]
    fine = patches[None] + rng.integers(-30, 30, (2, 24, 24))
    coarse = fine + rng.integers(-150, 150, fine.shape)
    coarse_pred = coarse[:1] + rng.integers(-300, 300, (2, 24, 24))
    fine[0, 3:6, 4:9] = -9999
    valid = rng.random((2, 24, 24)) > 0.1
    cases = {
        "usda": dict(),
        "usda-masked": dict(fine_valid=valid, coarse_pred_valid=valid[::-1]),
        "paper": dict(mode="paper"),
        "usda-one-pair": dict(pairs=1),
    }
    report = {}
    for name, kwargs in cases.items():
        pairs = kwargs.pop("pairs", 2)
        if "fine_valid" in kwargs:
            kwargs["fine_valid"] = kwargs["fine_valid"][:pairs]
        args = (fine[:pairs], coarse[:pairs], coarse_pred)
        gpu = starfm(*args, max_search_distance=150.0, engine="cuda", **kwargs)
        cpu = starfm(*args, max_search_distance=150.0, engine="numba", **kwargs)
        report[name] = {
            "prediction": bool(np.array_equal(gpu.prediction, cpu.prediction, equal_nan=True)),
            "quality": bool(np.array_equal(gpu.quality, cpu.quality)),
            "predicted": int(np.isfinite(cpu.prediction).sum()),
        }
    print(json.dumps(report))
    """
)


def test_cuda_kernel_matches_cpu_under_simulator() -> None:
    report = run_simulated(_SIMULATED)
    assert set(report) == {"usda", "usda-masked", "paper", "usda-one-pair"}
    for name, outcome in report.items():
        assert outcome["prediction"] and outcome["quality"], name
        assert outcome["predicted"] > 0, name


def _random_scene(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    rows, cols = shape
    base = rng.integers(500, 4000, (rows // 5 + 2, cols // 5 + 2))
    patches = np.kron(base, np.ones((5, 5), np.int64))[:rows, :cols]
    fine = (patches[None] + rng.integers(-40, 40, (2, rows, cols))).astype(np.int16)
    coarse = (fine + rng.integers(-150, 150, fine.shape)).astype(np.int16)
    coarse_pred = (coarse[:1] + rng.integers(-300, 300, (3, rows, cols))).astype(np.int16)
    return fine, coarse, coarse_pred


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["usda", "paper"])
def test_cupy_matches_cpu_on_random_scene(mode: str) -> None:
    import cupy

    host = _random_scene(8, (150, 170))
    device = [cupy.asarray(a) for a in host]
    gpu = starfm(*device, max_search_distance=450.0, mode=mode)
    cpu = starfm(*host, max_search_distance=450.0, mode=mode)
    assert isinstance(gpu.prediction, cupy.ndarray) and isinstance(gpu.quality, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(gpu.prediction), cpu.prediction)
    np.testing.assert_array_equal(cupy.asnumpy(gpu.quality), cpu.quality)


@pytest.mark.gpu
@pytest.mark.shared
def test_cupy_matches_cpu_on_oracle_input(shared_dir: Path) -> None:
    import cupy
    import rasterio

    folder = shared_dir / "data" / "fsdaf_lgc_sim"

    def band3(name: str) -> np.ndarray:
        with rasterio.open(folder / name) as dataset:
            return dataset.read(3)[None]

    host = [band3(n) for n in ("Landsat20041126", "MODIS20041126", "MODIS20041228")]
    gpu = starfm(*(cupy.asarray(a) for a in host))
    cpu = starfm(*host)
    np.testing.assert_array_equal(cupy.asnumpy(gpu.prediction), cpu.prediction)
    np.testing.assert_array_equal(cupy.asnumpy(gpu.quality), cpu.quality)


@pytest.mark.gpu
def test_mixed_host_and_device_inputs_are_rejected() -> None:
    import cupy

    fine, coarse, coarse_pred = _random_scene(1, (40, 40))
    with pytest.raises(TypeError, match="mix NumPy"):
        starfm(cupy.asarray(fine), coarse, coarse_pred, max_search_distance=150.0)
