"""QA decoders: hand-decoded bits, the layouts the real items declare, configuration errors."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from helpers.fixtures.stac.rasters import load_items
from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.ingest.catalog import qa

RNG = np.random.default_rng(42)


def _bits(values: np.ndarray, *bits: int) -> np.ndarray:
    return np.any([(values >> b) & 1 for b in bits], axis=0)


def test_landsat_default_masks_fill_clouds_shadow_snow_not_water():
    values = RNG.integers(0, 2**16, 5000, dtype=np.uint16)
    expected = ~_bits(values, 0, 1, 2, 3, 4, 5)
    np.testing.assert_array_equal(qa.landsat_qa_pixel(values), expected)
    clear_water = np.uint16(0b1100_0000)  # clear + water
    assert qa.landsat_qa_pixel(np.array([clear_water]))[0]
    assert not qa.landsat_qa_pixel(np.array([clear_water]), {"water"})[0]


def test_landsat_configurable_flags_and_fill_always_masked():
    values = np.array([0b1000, 0b0001, 0b0010_0000], dtype=np.uint16)  # cloud, fill, snow
    np.testing.assert_array_equal(qa.landsat_qa_pixel(values, {"snow"}), [True, False, False])
    np.testing.assert_array_equal(qa.landsat_qa_pixel(values, ()), [True, False, True])


def test_modis_state_fields_by_hand():
    values = RNG.integers(0, 2**16, 5000, dtype=np.uint16)
    cloud_state = values & 0b11
    cirrus = (values >> 8) & 0b11
    expected = (
        (values != 65535)
        & (cloud_state != 1)
        & (cloud_state != 2)
        & ~_bits(values, 2, 10, 12, 13, 15)
        & (cirrus == 0)
    )
    np.testing.assert_array_equal(qa.modis_state(values), expected)


def test_modis_state_not_set_cloud_state_counts_as_clear():
    assert qa.modis_state(np.array([0b11 | (1 << 3)], dtype=np.uint16))[0]
    land_only = qa.modis_state(np.array([0b000_000, 0b001_000], dtype=np.uint16), {"not_land"})
    np.testing.assert_array_equal(land_only, [False, True])


def test_mcd43_hls_s2_vi_classes():
    np.testing.assert_array_equal(
        qa.mcd43_mandatory_qa(np.array([0, 1, 2, 255], np.uint8)), [True, True, False, False]
    )
    np.testing.assert_array_equal(
        qa.mcd43_mandatory_qa(np.array([0, 1], np.uint8), {"magnitude_inversion"}), [True, False]
    )
    fmask = np.array([0, 64, 96, 2, 4, 8, 16, 1, 255], np.uint8)
    np.testing.assert_array_equal(
        qa.hls_fmask(fmask), [True, True, True, False, False, False, False, True, False]
    )
    scl = np.arange(12, dtype=np.uint8)
    np.testing.assert_array_equal(np.flatnonzero(qa.s2_scl(scl)), [4, 5, 6])
    np.testing.assert_array_equal(
        qa.vi_reliability(np.array([-1, 0, 1, 2, 3], np.int8)), [False, True, True, False, False]
    )


def test_decoders_are_lazy_on_dask():
    values = da.from_array(RNG.integers(0, 2**16, (64, 64), dtype=np.uint16), chunks=16)
    mask = qa.landsat_qa_pixel(values)
    assert isinstance(mask, da.Array)
    np.testing.assert_array_equal(mask.compute(), qa.landsat_qa_pixel(values.compute()))


@pytest.mark.parametrize(
    ("name", "flags"),
    [("landsat_qa_pixel", {"clouds"}), ("modis_state", {"cloud"}), ("s2_scl", {"cirrus"})],
)
def test_unknown_flags_are_config_errors(name, flags):
    with pytest.raises(ConfigError, match="unknown"):
        qa.decoder(name).decode(np.zeros(3, np.uint16), flags)


def test_unknown_decoder_and_all_classes_masked():
    with pytest.raises(ConfigError, match="unknown QA decoder"):
        qa.decoder("fmask2")
    with pytest.raises(ConfigError, match="every QA class"):
        qa.vi_reliability(np.zeros(2, np.int8), set(qa.VI_RELIABILITY_CLASSES))


def _declared_bits(asset: dict) -> dict[str, int]:
    return {f["name"]: f["offset"] for f in asset["classification:bitfields"] if f["length"] == 1}


@pytest.mark.shared
def test_landsat_layout_matches_pc_item_bitfields(shared_dir):
    item = load_items(shared_dir, "landsat-c2-l2/pc_landsat-c2-l2_4items.json")[0]
    declared = _declared_bits(item["assets"]["qa_pixel"])
    assert declared["fill"] == 0
    for name, bit in qa.LANDSAT_QA_BITS.items():
        assert declared[name] == bit, name
    assert (
        item["assets"]["qa_pixel"]["raster:bands"][0]["nodata"]
        == qa.DECODERS["landsat_qa_pixel"].fill
    )


@pytest.mark.shared
def test_hls_layout_matches_stactools_item_bitfields(shared_dir):
    item = load_items(shared_dir, "hls/stactools_HLS.L30.T19LDD.2022165T144027.v2.0.json")[0]
    declared = _declared_bits(item["assets"]["fmask"])
    assert declared == {"cloud": 1, "adjacent": 2, "cloud_shadow": 3, "snow_ice": 4, "water": 5}
    assert [
        qa.HLS_FMASK_BITS[k] for k in ("cloud", "adjacent_cloud", "cloud_shadow", "snow", "water")
    ] == [1, 2, 3, 4, 5]
    assert item["assets"]["fmask"]["raster:bands"][0]["nodata"] == qa.HLS_FMASK_FILL
