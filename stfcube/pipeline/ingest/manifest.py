"""Scene manifests: a small YAML or CSV file listing the images of a directory.

The user documentation, every key with a complete example, is ``docs/manifest.md``.

YAML form (all keys but ``scenes`` optional)::

    root: .                      # directory the scene paths are relative to (default: the
                                 # manifest's directory; a relative root is taken from there)
    fine_sensor: landsat-5-tm
    coarse_sensor: modis
    bands: [blue, green, nir]    # names of the cube's band axis (default b1..bN); checked
                                 # against the files' own band descriptions, if any
    units: reflectance x 10000
    coarse_ratio: 16             # only for coarse data delivered on the fine grid
    defaults:                    # decoding defaults per role, overridable per scene
      fine: {scale: 1, nodata: -9999, mask_valid_values: [0, 1]}
      coarse: {scale: 10000}
    scenes:
      - {role: fine, date: 2004-11-26, path: Landsat20041126, mask: Landsat20041126_mask}
      - {role: coarse, date: 2004-11-26, path: MODIS20041126}
      - role: coarse             # one file, one date per band (e.g. 16-day composites)
        path: MOD_16Day_ndvi
        band_dates: [2015-01-01, 2015-01-17]     # band 1, band 2, ... (or {band: date})

Decoding to the cube's common units is ``raw * scale + offset``; choose ``scale`` so that every
sensor lands in the same units (reflectance x 10000 by convention: MODIS 0..1 gets
``scale: 10000``, Landsat already x10000 gets ``scale: 1``). For ``units`` naming reflectance
or an index, a scene whose decoded values cannot be in them (0..1 into ``x 10000``) is refused
with the ``scale`` to set (:mod:`stfcube.pipeline.ingest.sanity`).

CSV form: one scene per row with the columns ``role,date,path`` and optionally ``mask``,
``bands`` and ``mask_valid_values`` (``;``-separated integers), ``scale``, ``offset``, ``nodata``.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from stfcube.pipeline.errors import InputError
from stfcube.pipeline.ingest.readers import Scene, SceneStack, local_file_problem

#: An ISO 8601 day, optionally with a time of day and UTC offset (2004-12-28, 2004-12-28T10:30Z).
_ISO_DAY = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)


def parse_day(value: object) -> dt.date:
    """A date written in a manifest: a YAML date or datetime, or an ISO 8601 string.

    Strings are ``YYYY-MM-DD``, optionally followed by a time of day (dropped); nothing else.

    Raises
    ------
    ValueError
        For a number (``20041228`` unquoted in YAML is an integer, not a date: the message
        suggests the date it looks like) or a string that is not exactly an ISO date.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool | int | float):
        try:
            hint = f"{dt.datetime.strptime(str(value), '%Y%m%d').date()} (YYYY-MM-DD)"
        except ValueError:
            hint = "YYYY-MM-DD"
        raise ValueError(f"{value!r} is a number, not a date: write {hint}")
    if isinstance(value, str) and _ISO_DAY.fullmatch(value.strip()):
        try:
            return dt.datetime.fromisoformat(value.strip()).date()
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date: write YYYY-MM-DD")


#: A manifest date, checked by :func:`parse_day`.
_Day = Annotated[dt.date, BeforeValidator(parse_day)]


class Decoding(BaseModel):
    """Per-role decoding defaults; every field can be overridden per scene."""

    model_config = ConfigDict(extra="forbid")

    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    mask_valid_values: tuple[int, ...] = ()


class ManifestScene(BaseModel):
    """One manifest entry: a file at one date, or a file whose bands are dates."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["fine", "coarse", "truth"]
    path: str
    date: _Day | None = None
    band_dates: dict[int, _Day] | None = None
    bands: tuple[int, ...] = ()
    mask: str | None = None
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None
    mask_valid_values: tuple[int, ...] | None = None

    @model_validator(mode="after")
    def _one_date_rule(self) -> ManifestScene:
        if (self.date is None) == (self.band_dates is None):
            raise ValueError("give exactly one of 'date' or 'band_dates'")
        if self.band_dates is not None and self.bands:
            raise ValueError("'bands' cannot be combined with 'band_dates' (each band is a date)")
        return self

    @field_validator("band_dates", mode="before")
    @classmethod
    def _numbered_bands(cls, band_dates: object) -> object:
        """A list of dates numbers its bands from 1."""
        if isinstance(band_dates, list):
            return dict(enumerate(band_dates, start=1))
        return band_dates

    @field_validator("bands")
    @classmethod
    def _positive_bands(cls, bands: tuple[int, ...]) -> tuple[int, ...]:
        if any(b < 1 for b in bands):
            raise ValueError("band indexes are 1-based")
        return bands


class Manifest(BaseModel):
    """A whole manifest (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    root: str | None = None
    fine_sensor: str = "fine"
    coarse_sensor: str = "coarse"
    bands: tuple[str, ...] = ()
    units: str = "reflectance x 10000"
    coarse_ratio: int | None = Field(default=None, ge=1)
    defaults: dict[Literal["fine", "coarse", "truth"], Decoding] = {}
    scenes: list[ManifestScene] = Field(min_length=1)


def _resolve(path: str, root: Path) -> str:
    return path if "://" in path or Path(path).is_absolute() else str(root / path)


def _scenes(entry: ManifestScene, defaults: Decoding, root: Path, where: Path) -> list[Scene]:
    """Expand one entry into scenes (one per band for ``band_dates``)."""
    valid_values = (
        defaults.mask_valid_values if entry.mask_valid_values is None else entry.mask_valid_values
    )
    if entry.mask is not None and not valid_values:
        raise InputError(where, f"scene {entry.path}: a mask needs 'mask_valid_values'")

    def scene(day: dt.date, bands: tuple[int, ...]) -> Scene:
        return Scene(
            role=entry.role,
            date=np.datetime64(day, "D"),
            path=_resolve(entry.path, root),
            bands=bands,
            scale=defaults.scale if entry.scale is None else entry.scale,
            offset=defaults.offset if entry.offset is None else entry.offset,
            nodata=defaults.nodata if entry.nodata is None else entry.nodata,
            mask_path=None if entry.mask is None else _resolve(entry.mask, root),
            mask_valid_values=valid_values,
        )

    if entry.date is not None:
        return [scene(entry.date, entry.bands)]
    band_dates = entry.band_dates or {}  # the model holds exactly one of date and band_dates
    return [scene(day, (band,)) for band, day in sorted(band_dates.items())]


def _describe(exc: ValidationError, raw: dict[str, Any]) -> str:
    """The validation errors, one per problem, each naming its place (and scene file)."""
    parts = []
    for err in exc.errors():
        loc = err["loc"]
        where = ".".join(str(p) for p in loc)
        message = str(err["msg"]).removeprefix("Value error, ")
        if len(loc) > 1 and loc[0] == "scenes" and isinstance(loc[1], int):
            entry = raw["scenes"][loc[1]]
            if isinstance(entry, dict) and "path" in entry:
                message += f" (scene {entry['path']})"
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(dict.fromkeys(parts))


def _read_csv(path: Path) -> dict[str, Any]:
    """CSV rows as the ``scenes`` list of a manifest dictionary."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"role", "date", "path"} - set(reader.fieldnames or ())
        if missing:
            raise InputError(path, f"missing CSV column(s): {', '.join(sorted(missing))}")
        scenes = []
        for row in reader:
            scene = {k: v.strip() for k, v in row.items() if k and v and v.strip()}
            for key in ("bands", "mask_valid_values"):
                if key in scene:
                    scene[key] = [int(v) for v in scene[key].split(";") if v.strip()]
            scenes.append(scene)
    return {"scenes": scenes}


def load_manifest(path: str | Path, *, root: str | Path | None = None) -> SceneStack:
    """Read a YAML or CSV manifest into a :class:`~stfcube.pipeline.ingest.readers.SceneStack`.

    Parameters
    ----------
    path
        The manifest (``.yaml``/``.yml`` or ``.csv``).
    root
        Directory the scene paths are relative to; overrides the manifest's ``root`` key.

    Returns
    -------
    SceneStack
        One scene per file (per band for ``band_dates`` entries), in manifest order.

    Raises
    ------
    InputError
        Missing or malformed manifest, unknown role, bad dates (the message names the entry).
    """
    path = Path(path)
    problem = local_file_problem(path)
    if problem is not None:
        raise InputError(path, f"manifest: {problem}")
    try:
        if path.suffix.lower() == ".csv":
            raw = _read_csv(path)
        else:
            raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot parse the manifest ({exc})") from exc
    if not isinstance(raw, dict):
        raise InputError(path, "a manifest is a mapping with a 'scenes' list")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise InputError(path, f"invalid manifest: {_describe(exc, raw)}") from exc
    base = Path(root) if root is not None else path.parent / (manifest.root or ".")
    scenes = [
        scene
        for entry in manifest.scenes
        for scene in _scenes(entry, manifest.defaults.get(entry.role, Decoding()), base, path)
    ]
    return SceneStack(
        source=str(path),
        scenes=tuple(scenes),
        band_names=manifest.bands,
        fine_sensor=manifest.fine_sensor,
        coarse_sensor=manifest.coarse_sensor,
        units=manifest.units,
        coarse_ratio=manifest.coarse_ratio,
    )
