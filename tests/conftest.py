"""Shared pytest set-up: offline environment, shared-data location, GPU detection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stfcube.pipeline.environment import apply_runtime_defaults

ROOT = Path(__file__).resolve().parents[1]
apply_runtime_defaults(ROOT / ".cache")  # before anything imports prefect, numba, cupy, ...

#: The project's shared test data and reference outputs, beside the checkout (or $STFCUBE_SHARED).
SHARED = Path(os.environ.get("STFCUBE_SHARED", ROOT.parent / "shared"))


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    if os.environ.get("STFCUBE_DISABLE_GPU"):
        return False
    try:
        import cupy
    except Exception:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests without a GPU and ``shared`` tests without ../shared."""
    skip_gpu = pytest.mark.skip(reason="no CUDA GPU with CuPy on this machine")
    skip_shared = pytest.mark.skip(reason=f"shared test data not found at {SHARED}")
    has_gpu = None
    for item in items:
        if "gpu" in item.keywords:
            if has_gpu is None:
                has_gpu = gpu_available()
            if not has_gpu:
                item.add_marker(skip_gpu)
        if "shared" in item.keywords and not SHARED.is_dir():
            item.add_marker(skip_shared)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread for a module (two oversubscribe a shared 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path of ``../shared``; tests using it must also carry ``@pytest.mark.shared``."""
    if not SHARED.is_dir():
        pytest.skip(f"shared test data not found at {SHARED}")
    return SHARED
