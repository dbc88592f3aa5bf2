"""Learned fusion models (STFDCNN, DCSTFN, EDCSTFN) in PyTorch: pure tensors in and out.

Needs the ``learned`` extra (``pip install 'stfcube[learned]'``). The models live in
:mod:`kernels.learned.models`, prediction from pairs in :mod:`kernels.learned.api`, the training
losses in :mod:`kernels.learned.losses`.
"""

from kernels.learned.api import Pair, predict
from kernels.learned.losses import CompoundLoss, FeatureAutoencoder, masked_mse, ms_ssim
from kernels.learned.models import DCSTFN, EDCSTFN, MODELS, STFDCNN, build_model, model_halo

__all__ = [
    "DCSTFN",
    "EDCSTFN",
    "MODELS",
    "STFDCNN",
    "CompoundLoss",
    "FeatureAutoencoder",
    "Pair",
    "build_model",
    "masked_mse",
    "model_halo",
    "ms_ssim",
    "predict",
]
