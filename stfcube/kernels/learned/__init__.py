"""Learned fusion models (STFDCNN, DCSTFN, EDCSTFN) in PyTorch: pure tensors in and out.

Needs the ``learned`` extra (``pip install 'stfcube[learned]'``). The models live in
:mod:`stfcube.kernels.learned.models`, prediction from pairs in :mod:`stfcube.kernels.learned.api`,
the training
losses in :mod:`stfcube.kernels.learned.losses`.
"""

from stfcube.kernels.learned.api import Pair, predict
from stfcube.kernels.learned.losses import CompoundLoss, FeatureAutoencoder, masked_mse, ms_ssim
from stfcube.kernels.learned.models import DCSTFN, EDCSTFN, MODELS, STFDCNN, build_model, model_halo

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
