"""Quality-assessment layers of catalog products decoded to validity masks.

Every decoder takes the raw QA values (NumPy, dask or xarray; integer dtype) and a set of flag
names that count as *invalid*, and returns a boolean array of the same shape, True where the
pixel is usable. The QA layer's own fill value is always invalid. The layouts are those of
``shared/research/scale_facts.md``:

- Landsat Collection 2 ``qa_pixel`` (uint16): bit 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud,
  4 cloud shadow, 5 snow, 6 clear, 7 water.
- MODIS 061 ``state_1km`` / ``sur_refl_state_500m`` / ``_250m`` (uint16, fill 65535): bits 0-1
  cloud state (00 clear, 01 cloudy, 10 mixed, 11 not set = clear), 2 cloud shadow, 3-5
  land/water, 8-9 cirrus, 10 internal cloud, 11 fire, 12 MOD35 snow/ice, 13 adjacent to
  cloud, 14 salt pan, 15 internal snow.
- MCD43A4 ``BRDF_Albedo_Band_Mandatory_Quality_BandN`` (uint8, fill 255): 0 full inversion,
  1 magnitude inversion.
- HLS v2.0 ``Fmask`` (uint8, fill 255): bit 0 cirrus (HLS user guide; not declared by the
  STAC items), 1 cloud, 2 adjacent to cloud/shadow, 3 cloud shadow, 4 snow/ice, 5 water.
- Sentinel-2 L2A ``SCL`` (uint8, 0 = no data): scene classes; 4 vegetation, 5 not vegetated
  and 6 water are clear by default.
- MOD13Q1 ``pixel_reliability`` (int8, fill -1): 0 good, 1 marginal, 2 snow/ice, 3 cloudy.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from stfcube.pipeline.errors import ConfigError

#: Landsat C2 ``qa_pixel`` single-bit flags.
LANDSAT_QA_BITS: dict[str, int] = {
    "dilated_cloud": 1,
    "cirrus": 2,
    "cloud": 3,
    "cloud_shadow": 4,
    "snow": 5,
    "water": 7,
}
#: Landsat flags masked by default: everything but water.
LANDSAT_DEFAULT_INVALID = frozenset({"dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow"})

#: MODIS ``state`` single-bit flags.
MODIS_STATE_BITS: dict[str, int] = {
    "cloud_shadow": 2,
    "internal_cloud": 10,
    "fire": 11,
    "snow": 12,
    "adjacent_cloud": 13,
    "salt_pan": 14,
    "internal_snow": 15,
}
#: MODIS flags derived from multi-bit fields: cloud state (bits 0-1), cirrus (8-9), land (3-5).
MODIS_STATE_FIELDS = frozenset({"cloudy", "mixed", "cirrus", "not_land"})
#: MODIS flags masked by default (a clear-sky mask; water kept).
MODIS_DEFAULT_INVALID = frozenset(
    {
        "cloudy",
        "mixed",
        "cloud_shadow",
        "cirrus",
        "internal_cloud",
        "snow",
        "adjacent_cloud",
        "internal_snow",
    }
)
#: MODIS ``state`` fill value.
MODIS_STATE_FILL = 65535

#: MCD43A4 mandatory-QA classes.
MCD43_QA_CLASSES: dict[str, int] = {"full_inversion": 0, "magnitude_inversion": 1}
#: MCD43A4 classes masked by default: none (both inversions give usable NBAR).
MCD43_DEFAULT_INVALID: frozenset[str] = frozenset()
#: MCD43A4 mandatory-QA fill value.
MCD43_QA_FILL = 255

#: HLS ``Fmask`` single-bit flags.
HLS_FMASK_BITS: dict[str, int] = {
    "cirrus": 0,
    "cloud": 1,
    "adjacent_cloud": 2,
    "cloud_shadow": 3,
    "snow": 4,
    "water": 5,
}
#: HLS flags masked by default (cirrus, bit 0, is not declared by the STAC items: not default).
HLS_DEFAULT_INVALID = frozenset({"cloud", "adjacent_cloud", "cloud_shadow", "snow"})
#: HLS ``Fmask`` fill value.
HLS_FMASK_FILL = 255

#: Sentinel-2 L2A scene classes.
S2_SCL_CLASSES: dict[str, int] = {
    "no_data": 0,
    "saturated": 1,
    "dark_area": 2,
    "cloud_shadow": 3,
    "vegetation": 4,
    "not_vegetated": 5,
    "water": 6,
    "unclassified": 7,
    "cloud_medium": 8,
    "cloud_high": 9,
    "thin_cirrus": 10,
    "snow": 11,
}
#: SCL classes masked by default: all but vegetation, bare soil and water.
S2_DEFAULT_INVALID = frozenset(set(S2_SCL_CLASSES) - {"vegetation", "not_vegetated", "water"})

#: MOD13Q1 ``pixel_reliability`` classes.
VI_RELIABILITY_CLASSES: dict[str, int] = {"good": 0, "marginal": 1, "snow": 2, "cloudy": 3}
#: MOD13Q1 classes masked by default.
VI_DEFAULT_INVALID = frozenset({"snow", "cloudy"})
#: MOD13Q1 ``pixel_reliability`` fill value.
VI_RELIABILITY_FILL = -1


def _bit(qa: Any, bit: int) -> Any:
    return (qa >> bit) & 1


def _any_bits(qa: Any, bits: Iterable[int]) -> Any:
    mask = sum(1 << b for b in bits)
    return (qa & mask) != 0


def landsat_qa_pixel(qa: Any, invalid: Iterable[str] = LANDSAT_DEFAULT_INVALID) -> Any:
    """Validity from Landsat Collection 2 ``qa_pixel``.

    Parameters
    ----------
    qa
        Raw ``qa_pixel`` values (uint16).
    invalid
        Flag names that make a pixel invalid, from :data:`LANDSAT_QA_BITS`. Fill (bit 0) is
        always invalid.

    Returns
    -------
    Same type as ``qa``, bool: True where usable.
    """
    flags = _check_flags(invalid, LANDSAT_QA_BITS, "landsat qa_pixel")
    return ~_any_bits(qa, [0, *(LANDSAT_QA_BITS[f] for f in flags)])


def modis_state(qa: Any, invalid: Iterable[str] = MODIS_DEFAULT_INVALID) -> Any:
    """Validity from MODIS 061 ``state_1km`` / ``sur_refl_state_500m`` / ``sur_refl_state_250m``.

    Parameters
    ----------
    qa
        Raw state values (uint16; 65535 is fill).
    invalid
        Flag names from :data:`MODIS_STATE_BITS` and :data:`MODIS_STATE_FIELDS`: ``cloudy``
        (cloud state 01), ``mixed`` (10), ``cirrus`` (any detected cirrus, bits 8-9 not 00),
        ``not_land`` (land/water bits 3-5 other than 001 land).

    Returns
    -------
    Same type as ``qa``, bool: True where usable.
    """
    known = {**MODIS_STATE_BITS, **dict.fromkeys(MODIS_STATE_FIELDS)}
    flags = _check_flags(invalid, known, "modis state")
    cloud_state = qa & 0b11
    cirrus = (qa >> 8) & 0b11
    land = (qa >> 3) & 0b111
    bad = qa == MODIS_STATE_FILL
    derived = {
        "cloudy": cloud_state == 1,
        "mixed": cloud_state == 2,
        "cirrus": cirrus != 0,
        "not_land": land != 1,
    }
    for flag in flags:
        bad = bad | (derived[flag] if flag in derived else _bit(qa, MODIS_STATE_BITS[flag]) == 1)
    return ~bad


def mcd43_mandatory_qa(qa: Any, invalid: Iterable[str] = MCD43_DEFAULT_INVALID) -> Any:
    """Validity from one MCD43A4 ``BRDF_Albedo_Band_Mandatory_Quality_BandN`` layer.

    Parameters
    ----------
    qa
        Raw quality values (uint8; 255 is fill, so is any value other than 0 and 1).
    invalid
        Class names from :data:`MCD43_QA_CLASSES` to reject as well.

    Returns
    -------
    Same type as ``qa``, bool: True where usable.
    """
    flags = _check_flags(invalid, MCD43_QA_CLASSES, "mcd43 mandatory qa")
    return _classes_ok(qa, [v for k, v in MCD43_QA_CLASSES.items() if k not in flags])


def hls_fmask(qa: Any, invalid: Iterable[str] = HLS_DEFAULT_INVALID) -> Any:
    """Validity from HLS v2.0 ``Fmask``.

    Parameters
    ----------
    qa
        Raw Fmask values (uint8; 255 is fill).
    invalid
        Flag names from :data:`HLS_FMASK_BITS`.

    Returns
    -------
    Same type as ``qa``, bool: True where usable.
    """
    flags = _check_flags(invalid, HLS_FMASK_BITS, "hls fmask")
    return ~((qa == HLS_FMASK_FILL) | _any_bits(qa, [HLS_FMASK_BITS[f] for f in flags]))


def s2_scl(qa: Any, invalid: Iterable[str] = S2_DEFAULT_INVALID) -> Any:
    """Validity from the Sentinel-2 L2A scene classification ``SCL``.

    Parameters
    ----------
    qa
        Raw SCL classes (uint8; 0 is no data and always invalid).
    invalid
        Class names from :data:`S2_SCL_CLASSES`.

    Returns
    -------
    Same type as ``qa``, bool: True where usable.
    """
    flags = _check_flags(invalid, S2_SCL_CLASSES, "sentinel-2 scl") | {"no_data"}
    return _classes_ok(qa, [v for k, v in S2_SCL_CLASSES.items() if k not in flags])


def vi_reliability(qa: Any, invalid: Iterable[str] = VI_DEFAULT_INVALID) -> Any:
    """Validity from MOD13Q1 ``250m_16_days_pixel_reliability``.

    Parameters
    ----------
    qa
        Raw reliability classes (int8; -1 is fill).
    invalid
        Class names from :data:`VI_RELIABILITY_CLASSES`.

    Returns
    -------
    Same type as ``qa``, bool: True where usable.
    """
    flags = _check_flags(invalid, VI_RELIABILITY_CLASSES, "modis vi reliability")
    return _classes_ok(qa, [v for k, v in VI_RELIABILITY_CLASSES.items() if k not in flags])


def _classes_ok(qa: Any, classes: list[int]) -> Any:
    if not classes:
        raise ConfigError("every QA class is masked: no pixel could ever be valid")
    return functools.reduce(operator.or_, (qa == value for value in classes))


def _check_flags(invalid: Iterable[str], known: dict, what: str) -> frozenset[str]:
    flags = frozenset(invalid)
    unknown = sorted(flags - set(known))
    if unknown:
        raise ConfigError(
            f"unknown {what} flag(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return flags


@dataclass(frozen=True)
class QaDecoder:
    """A QA layout: its decoder, default invalid flags, fill value and flag vocabulary.

    Attributes
    ----------
    name
        Decoder name used in the collection tables and on the command line.
    decode
        ``decode(raw, invalid) -> valid``.
    default_invalid
        Flags masked when the user names none.
    fill
        Raw fill value of the QA layer (the ``nodata`` given to the loader).
    flags
        Every flag name the decoder accepts.
    """

    name: str
    decode: Callable[[Any, Iterable[str]], Any]
    default_invalid: frozenset[str]
    fill: int
    flags: frozenset[str]


#: Every QA layout by name.
DECODERS: dict[str, QaDecoder] = {
    d.name: d
    for d in (
        QaDecoder(
            "landsat_qa_pixel",
            landsat_qa_pixel,
            LANDSAT_DEFAULT_INVALID,
            1,
            frozenset(LANDSAT_QA_BITS),
        ),
        QaDecoder(
            "modis_state",
            modis_state,
            MODIS_DEFAULT_INVALID,
            MODIS_STATE_FILL,
            frozenset(MODIS_STATE_BITS) | MODIS_STATE_FIELDS,
        ),
        QaDecoder(
            "mcd43_mandatory_qa",
            mcd43_mandatory_qa,
            MCD43_DEFAULT_INVALID,
            MCD43_QA_FILL,
            frozenset(MCD43_QA_CLASSES),
        ),
        QaDecoder(
            "hls_fmask", hls_fmask, HLS_DEFAULT_INVALID, HLS_FMASK_FILL, frozenset(HLS_FMASK_BITS)
        ),
        QaDecoder("s2_scl", s2_scl, S2_DEFAULT_INVALID, 0, frozenset(S2_SCL_CLASSES)),
        QaDecoder(
            "vi_reliability",
            vi_reliability,
            VI_DEFAULT_INVALID,
            VI_RELIABILITY_FILL,
            frozenset(VI_RELIABILITY_CLASSES),
        ),
    )
}


def decoder(name: str) -> QaDecoder:
    """The :class:`QaDecoder` called ``name``.

    Raises
    ------
    ConfigError
        For an unknown name.
    """
    if name not in DECODERS:
        raise ConfigError(f"unknown QA decoder {name!r}; known: {', '.join(sorted(DECODERS))}")
    return DECODERS[name]
