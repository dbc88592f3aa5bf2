"""Learned fusion (issue 16): training models on a cube (``stfcube train``) and their model
directories. The models themselves are in :mod:`kernels.learned` (PyTorch, the ``learned``
extra); the engine method is :mod:`pipeline.engine.methods.learned`."""

from pipeline._lazy import lazy_exports

__getattr__ = lazy_exports(
    __name__,
    {
        "TrainSettings": "pipeline.learned.settings",
        "TrainReport": "pipeline.learned.training",
        "train": "pipeline.learned.training",
    },
)
