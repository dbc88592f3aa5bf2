"""Model directories written by ``stfcube train``: their config, checks and loading.

A model directory holds ``config.json`` (format, model, bands, units and scaling, the cube's
grid and coarse ratio, training dates and settings, the weights' SHA-256), ``weights.pt`` (the
state dict), ``metrics.json`` (validation metrics), ``curves.png`` (training curves) and, while
training runs, ``checkpoint.pt``. Nothing here needs PyTorch except :func:`load_model`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import xarray as xr

from stfcube.pipeline.errors import ConfigError, InputError

#: Format tag of ``config.json``.
FORMAT = "stfcube-learned/1"
CONFIG = "config.json"
WEIGHTS = "weights.pt"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
CURVES = "curves.png"
#: Scaled reflectance = cube value x SCALE (the cube stores reflectance x 10000).
SCALE = 1e-4


def require_torch() -> None:
    """Refuse to go on without PyTorch, naming the extra that installs it."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the learned methods need PyTorch, which is not installed here: "
            "pip install 'stfcube[learned]' (python3 dev.py installs it)"
        ) from None


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cube_ratio(cube: xr.Dataset) -> int | None:
    """Fine pixels per coarse pixel: the native grid's, else the ``coarse_ratio`` attribute."""
    from stfcube.pipeline.engine.tasks import native_grid

    grid = native_grid(cube)
    if grid is not None:
        return grid.ratio
    ratio = cube.attrs.get("coarse_ratio")
    return int(ratio) if ratio else None


def cube_signature(cube: xr.Dataset) -> dict[str, Any]:
    """What a model must share with the cube it fuses: bands, units, scaling, coarse ratio, plus
    the grid it was trained on (recorded, not compared)."""
    return {
        "bands": [str(b) for b in cube["band"].values],
        "units": str(cube["fine"].attrs.get("units", "")),
        "scale": SCALE,
        "ratio": cube_ratio(cube),
        "native_grid": "coarse_native" in cube,
        "shape": [int(cube.sizes["y"]), int(cube.sizes["x"])],
        "crs": str(cube.attrs.get("crs", cube.attrs.get("spatial_ref", ""))) or None,
        "x0": float(cube["x"].values[0]),
        "y0": float(cube["y"].values[0]),
    }


def read_config(model_dir: Path) -> dict[str, Any]:
    """The model directory's config, checked for format and a present, intact weights file.

    Raises
    ------
    ConfigError
        When the directory, its config or its weights are missing, unreadable, of another
        format, or the weights' SHA-256 differs from the recorded one (a corrupt file).
    """
    path = model_dir / CONFIG
    if not model_dir.is_dir():
        raise ConfigError(f"{model_dir}: no such model directory (stfcube train writes one)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable model config ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a stfcube model config (format {FORMAT} expected)")
    weights = model_dir / WEIGHTS
    if not weights.is_file():
        raise ConfigError(f"{weights}: missing (training did not finish?)")
    if sha256(weights) != config.get("weights_sha256"):
        raise ConfigError(f"{weights}: corrupt (its SHA-256 differs from {CONFIG}'s)")
    return config


def check_cube(config: dict[str, Any], cube: xr.Dataset, model_dir: Path, cube_path: Path) -> None:
    """Refuse a cube whose bands, units/scaling or coarse ratio differ from the model's.

    Raises
    ------
    ConfigError
        Naming the model directory, the cube and what differs.
    """
    ours, theirs = config["cube"], cube_signature(cube)
    for key, what in (("bands", "bands"), ("units", "units"), ("scale", "scaling")):
        if ours[key] != theirs[key]:
            raise ConfigError(
                f"{model_dir} was trained on {what} {ours[key]} but {cube_path} has "
                f"{theirs[key]}: train a model on this cube"
            )
    if ours["ratio"] is not None and ours["ratio"] != theirs["ratio"]:
        raise ConfigError(
            f"{model_dir} was trained at a coarse/fine ratio of {ours['ratio']} but "
            f"{cube_path} has {theirs['ratio']}: train a model on this cube"
        )
    if config["model"] == "dcstfn" and not theirs["native_grid"]:
        raise InputError(cube_path, "DCSTFN reads the native coarse grid, which this cube lacks")


def load_model(model_dir: Path, config: dict[str, Any], device: str = "cpu") -> Any:
    """The trained model of ``model_dir`` in evaluation mode on ``device`` (``cpu``/``cuda``).

    Raises
    ------
    ConfigError
        When the weights do not load into the model the config describes.
    """
    require_torch()
    import torch

    from stfcube.kernels.learned import build_model

    cube = config["cube"]
    widths = config["settings"].get("widths")
    model = build_model(config["model"], len(cube["bands"]), cube["ratio"], widths)
    path = model_dir / WEIGHTS
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise ConfigError(
            f"{path}: cannot load the weights ({type(exc).__name__}: {exc})"
        ) from None
    return model.to(device).eval()
