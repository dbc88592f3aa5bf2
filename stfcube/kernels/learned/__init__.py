"""Learned fusion models (STFDCNN, DCSTFN, EDCSTFN, GAN-STFM) in PyTorch: pure tensors in and out.

Needs the ``learned`` extra (``pip install 'stfcube[learned]'``). The CNNs live in
:mod:`stfcube.kernels.learned.models`, GAN-STFM's generator in
:mod:`stfcube.kernels.learned.ganstfm` and its discriminator and losses in
:mod:`stfcube.kernels.learned.adversarial`, prediction from pairs in
:mod:`stfcube.kernels.learned.api`, the CNNs' training losses in
:mod:`stfcube.kernels.learned.losses`.
"""

from stfcube.kernels.learned.adversarial import FeatureUNet, MSDiscriminator, ReconstructionLoss
from stfcube.kernels.learned.api import Pair, predict
from stfcube.kernels.learned.ganstfm import GANSTFM, WindowGrid, fuse_windows
from stfcube.kernels.learned.losses import CompoundLoss, FeatureAutoencoder, masked_mse, ms_ssim
from stfcube.kernels.learned.models import DCSTFN, EDCSTFN, MODELS, STFDCNN, build_model, model_halo

__all__ = [
    "DCSTFN",
    "EDCSTFN",
    "GANSTFM",
    "MODELS",
    "STFDCNN",
    "CompoundLoss",
    "FeatureAutoencoder",
    "FeatureUNet",
    "MSDiscriminator",
    "Pair",
    "ReconstructionLoss",
    "WindowGrid",
    "build_model",
    "fuse_windows",
    "masked_mse",
    "model_halo",
    "ms_ssim",
    "predict",
]
