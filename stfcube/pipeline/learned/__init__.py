"""Learned fusion (issue 16): training models on a cube (``stfcube train``) and their model
directories. The models themselves are in :mod:`stfcube.kernels.learned` (PyTorch, the ``learned``
extra); the engine method is :mod:`stfcube.pipeline.engine.methods.learned`."""

from stfcube.pipeline._lazy import lazy_exports

__getattr__ = lazy_exports(
    __name__,
    {
        "TrainSettings": "stfcube.pipeline.learned.settings",
        "TrainReport": "stfcube.pipeline.learned.training",
        "train": "stfcube.pipeline.learned.training",
    },
)
