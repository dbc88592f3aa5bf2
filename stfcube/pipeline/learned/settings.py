"""Training settings of ``stfcube train`` (validated; recorded in the model's config)."""

from __future__ import annotations

from dataclasses import dataclass

from stfcube.pipeline.errors import ConfigError

MODELS = ("edcstfn", "dcstfn", "stfdcnn", "ganstfm")


@dataclass(frozen=True)
class TrainSettings:
    """Training settings (recorded in ``config.json``; a resumed run must use the same).

    ``transition`` is STFDCNN's transition-image block size in fine pixels (0: half the coarse
    ratio, or 8); ``pairs`` 2 trains EDCSTFN on two references per sample; ``widths`` are
    GAN-STFM's encoder widths (the published ones by default).
    """

    model: str = "edcstfn"
    epochs: int = 30
    steps: int = 50
    batch: int = 8
    patch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-6
    patience: int = 5
    pairs: int = 1
    validation_fraction: float = 0.2
    validation_size: int = 256
    min_valid: float = 0.5
    autoencoder_steps: int = 100
    alpha: float = 0.8
    ms_ssim: str = "standard"
    transition: int = 0
    seed: int = 2019
    threads: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 128)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        positive = ("epochs", "steps", "batch", "patch", "patience", "threads", "validation_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
        if self.pairs not in (1, 2) or (self.pairs == 2 and self.model != "edcstfn"):
            raise ConfigError("--pairs is 1, or 2 for EDCSTFN only")
        if self.ms_ssim not in ("standard", "authors"):
            raise ConfigError("--ms-ssim must be standard or authors")
        if self.model == "ganstfm":
            self._check_ganstfm()
        if not 0 < self.validation_fraction < 1 or not 0 <= self.min_valid <= 1:
            raise ConfigError("--validation-fraction lies in (0, 1), --min-valid in [0, 1]")

    def _check_ganstfm(self) -> None:
        if self.patch % 8:
            raise ConfigError("--patch must be a multiple of 8 for ganstfm (its feature U-Net)")
        if self.batch < 2:
            raise ConfigError("--batch must be >= 2 for ganstfm (batch norm in its discriminator)")
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise ConfigError(f"--widths: four positive widths, got {self.widths}")
