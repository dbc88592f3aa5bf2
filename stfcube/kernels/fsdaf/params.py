"""FSDAF's scalar parameters (:class:`FsdafParams`), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

#: ``reference``: Zhu's IDL program (blocks of ``block_size`` coarse pixels, one coarse pixel of
#: overlap, exact thin-plate spline per block); ``seamless``: global classification, clipping,
#: unmixing and thresholds, a local thin-plate spline, nodata left out, tiled == whole image.
MODES = ("reference", "seamless")
#: Most classes a class map may hold (class values 0 .. MAX_CLASS; 0 is "unclassified").
MAX_CLASS = 255


@dataclass(frozen=True)
class FsdafParams:
    """FSDAF parameters (Zhu et al. 2016); the defaults are the IDL program's (02/15/2019).

    Parameters
    ----------
    window_radius
        w: half-width of the heterogeneity and similar-pixel windows, fine px ((2w+1)^2).
    n_similar
        Similar pixels of the final smoothing (the centre pixel is a candidate).
    num_pure
        Purest coarse pixels per class taken for the unmixing.
    dn_min, dn_max
        Valid data range (data units): percentile clipping, clamps and fallbacks.
    scale_factor
        Fine pixels per coarse pixel (integer). Reference mode: the program's coarse cells on
        the fine-grid coarse images; seamless mode: must equal the cube's native ratio.
    block_size
        Reference mode: coarse pixels per block side (blocks overlap by one coarse pixel).
    background, background_band
        Reference mode: a fine pixel whose band ``background_band`` (0-based) equals
        ``background`` is background (not classified, not predicted), as in the program.
    nonchange_percentiles
        Purest-pixel changes kept for the unmixing: between these quantiles (0.1, 0.9; the
        program suggests 0.25, 0.75 for large land-cover change).
    clip_percentiles
        F1 values at or beyond these quantiles are replaced by the nearest value inside.
    weight_cap
        Residual weights above this (after normalisation) are replaced by their mean.
    min_classes, max_classes, isodata_iterations, change_threshold, merge_distance,
    merge_pairs, min_pixels, split_std, split_multiplier
        ISODATA (without a class map): class count range, iterations, stop when fewer than
        ``change_threshold`` of the pixels change class, merge centres closer than
        ``merge_distance * dn_max`` (at most ``merge_pairs`` per iteration), drop classes with
        fewer than ``min_pixels`` pixels, split a class whose standard deviation in a band
        exceeds ``split_std * dn_max`` (centres ``mean +- split_multiplier * std``).
    isodata_sample
        Most pixels ISODATA fits the centres on (a regular subsample; all pixels then take
        their nearest centre).
    tps_radius
        Seamless mode: each coarse pixel's thin-plate spline runs through the (2k+1)^2 coarse
        centres around it (clamped inside the image), coarse px.
    truncate
        Truncate the prediction toward zero, as the program's cast to an integer input type.
    mode
        ``"reference"`` or ``"seamless"`` (see :data:`MODES`).
    class_map
        Engine only: the static cube layer holding the class map ("" = ISODATA).
    """

    window_radius: int = 20
    n_similar: int = 20
    num_pure: int = 100
    dn_min: float = 0.0
    dn_max: float = 10000.0
    scale_factor: int = 16
    block_size: int = 30
    background: float = 0.0
    background_band: int = 2
    nonchange_percentiles: tuple[float, float] = (0.1, 0.9)
    clip_percentiles: tuple[float, float] = (0.0001, 0.9999)
    weight_cap: float = 10.0
    min_classes: int = 4
    max_classes: int = 6
    isodata_iterations: int = 20
    change_threshold: float = 0.05
    merge_distance: float = 0.05
    merge_pairs: int = 2
    min_pixels: int = 200
    split_std: float = 0.05
    split_multiplier: float = 1.0
    isodata_sample: int = 250_000
    tps_radius: int = 4
    truncate: bool = False
    mode: str = "reference"
    class_map: str = ""

    def __post_init__(self) -> None:
        integers = (
            "window_radius",
            "n_similar",
            "num_pure",
            "scale_factor",
            "block_size",
            "background_band",
            "min_classes",
            "max_classes",
            "isodata_iterations",
            "merge_pairs",
            "min_pixels",
            "isodata_sample",
            "tps_radius",
        )
        for name in integers:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        positive = ("window_radius", "n_similar", "num_pure", "scale_factor", "block_size")
        for name in (*positive, "isodata_sample", "tps_radius"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_similar > (2 * self.window_radius + 1) ** 2:
            raise ValueError("n_similar must not exceed the (2*window_radius+1)^2 window")
        if not self.dn_min < self.dn_max:
            raise ValueError(f"dn_min ({self.dn_min}) must be below dn_max ({self.dn_max})")
        if not 1 <= self.min_classes <= self.max_classes <= MAX_CLASS:
            raise ValueError(f"need 1 <= min_classes <= max_classes <= {MAX_CLASS}")
        for name in ("nonchange_percentiles", "clip_percentiles"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError(f"{name} must be 0 <= low <= high <= 1, got {(low, high)}")
        if not self.weight_cap > 1.0:
            raise ValueError(f"weight_cap must be > 1, got {self.weight_cap}")
        if self.background_band < 0:
            raise ValueError("background_band is a 0-based band index (>= 0)")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    @property
    def patch(self) -> int:
        """Reference mode: fine pixels per block side (``block_size * scale_factor``)."""
        return self.block_size * self.scale_factor
