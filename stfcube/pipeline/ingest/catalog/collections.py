"""Per-collection tables: which asset holds which band, how to decode it, and its QA.

Catalogs name the same product differently (Planetary Computer ``landsat-c2-l2``, USGS
``landsat-c2l2-sr``, NASA CMR ``HLSL30_2.0``, ...) and key the assets differently (PC
``B04`` vs Earth Search v1 ``red``; stactools HLS ``nir_narrow`` vs PC/CMR ``B05``/``B8A``).
Each :class:`CollectionSpec` lists the collection ids it answers to and, per cube band, the asset
keys to look for (the first one present in an item wins).

Cube bands are named by role, so that fine and coarse sensors line up (see
``shared/research/scale_facts.md``, band correspondence): ``blue green red nir swir1 swir2``
(Landsat OLI B2-B7, ETM+/TM B1-B5,B7, HLS L30 B02-B07, HLS S30 and Sentinel-2 B02, B03, B04,
**B8A**, B11, B12, MODIS b3, b4, b1, b2, b6, b7) and ``ndvi`` (MOD13Q1; derived from red and nir
for the fine sensors).

Decoding to the cube's common units (reflectance x 10000,
:data:`stfcube.pipeline.store.cube.COMMON_UNIT_FACTOR`)
uses ``raster:bands`` ``scale``/``offset``/``nodata`` where the item declares them and the
defaults below where it does not (USGS items declare none; MODIS items declare no nodata;
PC Sentinel-2 items declare nothing).

Dates: fine scenes are dated by their acquisition's *solar day* (so items of one overpass that
straddle UTC midnight or several UTM zones form one date); composites without a ``datetime``
(MOD09A1, MOD09Q1, MOD13Q1) are dated by the **midpoint** day of their
``start_datetime``/``end_datetime`` interval; MCD43A4 carries its centre day as ``datetime`` and
is dated by it.

Resampling: fine bands are read with ``bilinear`` where they must be reprojected (another UTM
zone); coarse bands are put on the fine grid with ``bilinear`` and on their native-size grid
(``coarse_native``) with ``average``; QA layers always use ``nearest``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pystac

from stfcube.pipeline.errors import InputError
from stfcube.pipeline.ingest.catalog.qa import decoder

#: Canonical order of the cube's band axis.
BAND_ORDER = ("blue", "green", "red", "nir", "swir1", "swir2", "ndvi")
#: Bands a fine sensor can derive from others: name -> (red, nir) inputs of a normalised difference.
DERIVED_BANDS: dict[str, tuple[str, str]] = {"ndvi": ("red", "nir")}
#: Date rules (see the module docstring).
DATE_RULES = ("solar_day", "midpoint")
#: Resampling of fine bands where reprojected, of coarse bands onto the fine grid, onto the
#: native coarse grid, and of QA layers.
FINE_RESAMPLING = "bilinear"
COARSE_RESAMPLING = "bilinear"
NATIVE_RESAMPLING = "average"
QA_RESAMPLING = "nearest"


@dataclass(frozen=True)
class Decoding:
    """Raw-to-physical decoding of a band asset: ``physical = raw * scale + offset``.

    Attributes
    ----------
    scale, offset
        To physical reflectance (0..1) or index value.
    nodata
        Raw fill value, or None.
    data_type
        Raw data type (``raster:bands`` vocabulary).
    valid_range
        Inclusive raw range of valid values, or None; values outside it are invalid.
    """

    scale: float
    offset: float
    nodata: float | None
    data_type: str
    valid_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class CollectionSpec:
    """How to read one catalog collection (under all its catalog ids).

    Attributes
    ----------
    name
        Canonical id (the Planetary Computer id where PC has the product).
    ids
        Every collection id this table answers to, ``name`` included.
    sensor
        Sensor family recorded in the cube (``fine_sensor`` / ``coarse_sensor``).
    role
        ``"fine"`` or ``"coarse"``.
    bands
        Cube band name -> candidate asset keys, first present wins.
    decoding
        Default decoding of every band asset (overridden field by field by ``raster:bands``).
    qa_decoder
        Name of the QA layout in :data:`stfcube.pipeline.ingest.catalog.qa.DECODERS`.
    qa_assets
        Candidate asset keys of the QA layer. For per-band QA (MCD43A4), see ``band_qa``.
    band_qa
        Cube band name -> candidate QA asset keys, when the QA is per band.
    qa_data_type
        Raw data type of the QA layer.
    date_rule
        One of :data:`DATE_RULES`.
    native_resolution
        Nominal pixel size in metres of the band assets.
    """

    name: str
    ids: tuple[str, ...]
    sensor: str
    role: str
    bands: Mapping[str, tuple[str, ...]]
    decoding: Decoding
    qa_decoder: str
    qa_data_type: str
    date_rule: str
    native_resolution: float
    qa_assets: tuple[str, ...] = ()
    band_qa: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def has_band(self, band: str) -> bool:
        """True when the collection has ``band`` as an asset or can derive it."""
        return band in self.bands or (
            band in DERIVED_BANDS and all(b in self.bands for b in DERIVED_BANDS[band])
        )

    def qa_fill(self) -> int:
        """Raw fill value of the QA layer."""
        return decoder(self.qa_decoder).fill

    def item_decoding(self, item: pystac.Item, asset_key: str) -> Decoding:
        """Decoding of one asset of an item: its ``raster:bands`` over the defaults.

        Sentinel-2 L2A from processing baseline 04.00 carries a +1000 DN offset that PC does not
        declare; without a declared offset it is applied from ``s2:processing_baseline``.
        """
        default = self.decoding
        if self.sensor == "sentinel-2" and _s2_baseline(item) >= (4, 0):
            default = Decoding(default.scale, -0.1, default.nodata, default.data_type)
        bands = item.assets[asset_key].extra_fields.get("raster:bands") or [{}]
        declared = bands[0]
        return Decoding(
            scale=float(declared.get("scale", default.scale)),
            offset=float(declared.get("offset", default.offset)),
            nodata=declared.get("nodata", default.nodata),
            data_type=str(declared.get("data_type", default.data_type)),
            valid_range=default.valid_range,
        )


def _s2_baseline(item: pystac.Item) -> tuple[int, int]:
    text = str(item.properties.get("s2:processing_baseline", "0.0"))
    try:
        major, minor = (int(p) for p in text.split(".")[:2])
    except ValueError as exc:
        raise InputError(item.id, f"unreadable s2:processing_baseline {text!r}") from exc
    return major, minor


_LANDSAT_SR = Decoding(2.75e-05, -0.2, 0, "uint16")
_MODIS_SR = Decoding(1e-4, 0.0, -28672, "int16", valid_range=(-100, 16000))
#: MCD43A4 NBAR fill: 32767 (the HDF _FillValue; not declared by the STAC items).
_MCD43_NBAR = Decoding(1e-4, 0.0, 32767, "int16", valid_range=(0, 32766))
#: MOD13Q1 NDVI fill -3000, valid range -2000..10000 (HDF attributes; not declared by STAC).
_MODIS_VI = Decoding(1e-4, 0.0, -3000, "int16", valid_range=(-2000, 10000))
_HLS_SR = Decoding(1e-4, 0.0, -9999, "int16")
_S2_SR = Decoding(1e-4, 0.0, 0, "uint16")

_LANDSAT_BANDS = {
    "blue": ("blue",),
    "green": ("green",),
    "red": ("red",),
    "nir": ("nir08",),
    "swir1": ("swir16",),
    "swir2": ("swir22",),
}
_S2_BANDS = {
    "blue": ("B02", "blue"),
    "green": ("B03", "green"),
    "red": ("B04", "red"),
    "nir": ("B8A", "nir08"),
    "swir1": ("B11", "swir16"),
    "swir2": ("B12", "swir22"),
}


def _hls_bands(nir: str) -> dict[str, tuple[str, ...]]:
    """HLS keys: stactools descriptive names first, then the band ids of PC ``hls2-*`` / CMR."""
    ids = {"blue": "B02", "green": "B03", "red": "B04", "nir": nir}
    names = {
        "blue": "blue",
        "green": "green",
        "red": "red",
        "nir": "nir_narrow",
        "swir1": "swir_1",
        "swir2": "swir_2",
    }
    landsat = nir == "B05"
    ids.update({"swir1": "B06", "swir2": "B07"} if landsat else {"swir1": "B11", "swir2": "B12"})
    return {band: (names[band], ids[band]) for band in names}


def _modis_sr_bands(prefix: str, numbers: Mapping[str, int]) -> dict[str, tuple[str, ...]]:
    return {band: (f"{prefix}{n:02d}", f"{prefix}{n:02d}_1") for band, n in numbers.items()}


_MODIS_ALL = {"blue": 3, "green": 4, "red": 1, "nir": 2, "swir1": 6, "swir2": 7}
_MODIS_250 = {"red": 1, "nir": 2}
_MCD43_NUMBERS = _MODIS_ALL

#: Every known collection.
COLLECTIONS: tuple[CollectionSpec, ...] = (
    CollectionSpec(
        name="landsat-c2-l2",
        ids=("landsat-c2-l2", "landsat-c2l2-sr"),
        sensor="landsat",
        role="fine",
        bands=_LANDSAT_BANDS,
        decoding=_LANDSAT_SR,
        qa_decoder="landsat_qa_pixel",
        qa_assets=("qa_pixel",),
        qa_data_type="uint16",
        date_rule="solar_day",
        native_resolution=30.0,
    ),
    CollectionSpec(
        name="hls",
        ids=("hls",),
        sensor="hls",
        role="fine",
        bands=_hls_bands("nir_narrow"),
        decoding=_HLS_SR,
        qa_decoder="hls_fmask",
        qa_assets=("fmask", "Fmask"),
        qa_data_type="uint8",
        date_rule="solar_day",
        native_resolution=30.0,
    ),
    CollectionSpec(
        name="hls2-l30",
        ids=("hls2-l30", "HLSL30_2.0", "HLSL30.v2.0"),
        sensor="hls",
        role="fine",
        bands=_hls_bands("B05"),
        decoding=_HLS_SR,
        qa_decoder="hls_fmask",
        qa_assets=("Fmask", "fmask"),
        qa_data_type="uint8",
        date_rule="solar_day",
        native_resolution=30.0,
    ),
    CollectionSpec(
        name="hls2-s30",
        ids=("hls2-s30", "HLSS30_2.0", "HLSS30.v2.0"),
        sensor="hls",
        role="fine",
        bands=_hls_bands("B8A"),
        decoding=_HLS_SR,
        qa_decoder="hls_fmask",
        qa_assets=("Fmask", "fmask"),
        qa_data_type="uint8",
        date_rule="solar_day",
        native_resolution=30.0,
    ),
    CollectionSpec(
        name="sentinel-2-l2a",
        ids=("sentinel-2-l2a", "sentinel-s2-l2a-cogs"),
        sensor="sentinel-2",
        role="fine",
        bands=_S2_BANDS,
        decoding=_S2_SR,
        qa_decoder="s2_scl",
        qa_assets=("SCL", "scl"),
        qa_data_type="uint8",
        date_rule="solar_day",
        native_resolution=10.0,
    ),
    CollectionSpec(
        name="modis-09A1-061",
        ids=("modis-09A1-061", "MOD09A1.v061", "MYD09A1.v061"),
        sensor="modis",
        role="coarse",
        bands=_modis_sr_bands("sur_refl_b", _MODIS_ALL),
        decoding=_MODIS_SR,
        qa_decoder="modis_state",
        qa_assets=("sur_refl_state_500m",),
        qa_data_type="uint16",
        date_rule="midpoint",
        native_resolution=463.312716528,
    ),
    CollectionSpec(
        name="modis-09Q1-061",
        ids=("modis-09Q1-061", "MOD09Q1.v061", "MYD09Q1.v061"),
        sensor="modis",
        role="coarse",
        bands=_modis_sr_bands("sur_refl_b", _MODIS_250),
        decoding=_MODIS_SR,
        qa_decoder="modis_state",
        qa_assets=("sur_refl_state_250m",),
        qa_data_type="uint16",
        date_rule="midpoint",
        native_resolution=231.656358264,
    ),
    CollectionSpec(
        name="modis-09GA-061",
        ids=("modis-09GA-061", "MOD09GA.v061", "MYD09GA.v061"),
        sensor="modis",
        role="coarse",
        bands=_modis_sr_bands("sur_refl_b", _MODIS_ALL),
        decoding=_MODIS_SR,
        qa_decoder="modis_state",
        qa_assets=("state_1km", "state_1km_1"),
        qa_data_type="uint16",
        date_rule="midpoint",
        native_resolution=463.312716528,
    ),
    CollectionSpec(
        name="modis-43A4-061",
        ids=("modis-43A4-061", "MCD43A4.v061"),
        sensor="modis-nbar",
        role="coarse",
        bands={b: (f"Nadir_Reflectance_Band{n}",) for b, n in _MCD43_NUMBERS.items()},
        decoding=_MCD43_NBAR,
        qa_decoder="mcd43_mandatory_qa",
        qa_data_type="uint8",
        band_qa={
            b: (f"BRDF_Albedo_Band_Mandatory_Quality_Band{n}",) for b, n in _MCD43_NUMBERS.items()
        },
        date_rule="midpoint",
        native_resolution=463.312716528,
    ),
    CollectionSpec(
        name="modis-13Q1-061",
        ids=("modis-13Q1-061", "MOD13Q1.v061", "MYD13Q1.v061"),
        sensor="modis-vi",
        role="coarse",
        bands={"ndvi": ("250m_16_days_NDVI",)},
        decoding=_MODIS_VI,
        qa_decoder="vi_reliability",
        qa_assets=("250m_16_days_pixel_reliability",),
        qa_data_type="int8",
        date_rule="midpoint",
        native_resolution=231.656358264,
    ),
)

_BY_ID = {cid: spec for spec in COLLECTIONS for cid in spec.ids}


def collection_spec(collection_id: str | None, item_id: str | None = None) -> CollectionSpec:
    """The table of a collection id.

    Parameters
    ----------
    collection_id
        A collection id as a catalog spells it.
    item_id
        The item being read, named in the error.

    Raises
    ------
    InputError
        When the collection is unknown (or the item names none).
    """
    if collection_id not in _BY_ID:
        known = ", ".join(sorted(_BY_ID))
        raise InputError(
            item_id,
            f"collection {collection_id!r} is not supported (known collections: {known})",
        )
    return _BY_ID[collection_id]


def common_bands(*specs: CollectionSpec) -> tuple[str, ...]:
    """The bands every collection has as assets, in :data:`BAND_ORDER`; when there are none,
    those every collection has or derives (``ndvi`` for Landsat with MOD13Q1)."""
    native = tuple(b for b in BAND_ORDER if all(b in s.bands for s in specs))
    return native or tuple(b for b in BAND_ORDER if all(s.has_band(b) for s in specs))
