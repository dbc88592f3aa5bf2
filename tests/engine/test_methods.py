"""Engine v2: methods plug in without editing the engine (issue 12, acceptance 1 and 3).

The baselines read the cube's native coarse grid, the test-only methods a static layer and their
own global statistics; all write their own layer. Tiled output equals the whole image (one tile
covering it), and equals a direct kernel call on whole arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.kernels.baselines import coarse_residual, nochange
from stfcube.pipeline.cli import main
from stfcube.pipeline.engine import fuse, get_method
from stfcube.pipeline.errors import ConfigError

DAYS = [f"2024-05-{d:02d}" for d in range(1, 13)]
PAIRS = ["2024-05-01", "2024-05-06"]
SHAPE = (70, 90)  # not a multiple of the tile nor of the coarse ratio
RATIO = 8
STATIC = "helpers.static_method:ClassChangeMethod"
TWO_PAIR = "helpers.static_method:TwoPairMeanMethod"


def classes() -> np.ndarray:
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    return ((yy // 13 + 2 * (xx // 19)) % 4).astype(np.uint8)


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fine on two dates (one with a cloud), daily coarse on a native 240 m grid, a class map."""
    truth = synthetic_scene(SHAPE, 2, DAYS, seed=5)
    fine = {d: truth[d].copy() for d in PAIRS}
    cloud = np.ones(SHAPE, dtype=bool)
    cloud[10:30, 40:70] = False
    coarse_valid = {"2024-05-03": np.ones(SHAPE, dtype=bool)}
    coarse_valid["2024-05-03"][:24, :24] = False  # a masked coarse corner on one date
    path = tmp_path_factory.mktemp("methods") / "cube.zarr"
    return write_cube(
        path,
        fine,
        block_mean(truth, RATIO),
        fine_valid={"2024-05-06": cloud},
        coarse_valid=coarse_valid,
        chunk=32,
        native_ratio=RATIO,
        static={"landcover": classes()},
    )


def fused(path: Path, name: str = "fused") -> np.ndarray:
    return xr.open_zarr(path, consolidated=False).sortby("time")[name].values


def run(cube: Path, out: Path, method: str, tile: int, **kwargs) -> xr.Dataset:
    fuse(cube, out, method=method, tile=tile, local_threads=2, **kwargs)
    return xr.open_zarr(out, consolidated=False).sortby("time")


@pytest.mark.parametrize("method", ["nochange", "coarse-residual", STATIC])
def test_tiled_equals_whole_image(cube: Path, tmp_path: Path, method: str) -> None:
    layer = {"nochange": "fine_offset_days", "coarse-residual": "fine_offset_days"}.get(
        method, "class"
    )
    whole = run(cube, tmp_path / "whole.zarr", method, tile=128)
    for tile in (16, 24):
        tiled = run(cube, tmp_path / f"tiled{tile}.zarr", method, tile=tile)
        np.testing.assert_array_equal(tiled["fused"].values, whole["fused"].values)
        np.testing.assert_array_equal(tiled[layer].values, whole[layer].values)
    assert np.isfinite(whole["fused"].values).mean() > 0.9
    assert whole.attrs["complete"] is True


def _cube_arrays(cube: Path, dates: list[str]) -> dict[str, np.ndarray]:
    ds = xr.open_zarr(cube, consolidated=False)
    pairs = [np.datetime64(d, "ns") for d in PAIRS]
    preds = [np.datetime64(d, "ns") for d in dates]
    native = ds["coarse_native"].values, ds["coarse_native_valid"].values
    index = {t: i for i, t in enumerate(ds["time"].values)}
    return {
        "fine": ds["fine"].sel(time=pairs).values,
        "fine_valid": ds["fine_valid"].sel(time=pairs).values,
        "coarse": native[0][[index[t] for t in pairs]],
        "coarse_valid": native[1][[index[t] for t in pairs]],
        "coarse_pred": native[0][[index[t] for t in preds]],
        "coarse_pred_valid": native[1][[index[t] for t in preds]],
    }


def _offsets(dates: list[str]) -> np.ndarray:
    pairs = np.array(PAIRS, dtype="datetime64[D]")
    return (pairs[None] - np.array(dates, dtype="datetime64[D]")[:, None]).astype(np.int64)


def test_baselines_equal_the_kernels_on_whole_arrays(cube: Path, tmp_path: Path) -> None:
    dates = [d for d in DAYS if d not in PAIRS and "2024-05-01" < d < "2024-05-06"]
    a = _cube_arrays(cube, dates)
    expected, offsets = nochange(a["fine"], a["fine_valid"], _offsets(dates))
    out = run(cube, tmp_path / "nochange.zarr", "nochange", tile=16, dates=dates)
    np.testing.assert_array_equal(out["fused"].values, expected)
    np.testing.assert_array_equal(out["fine_offset_days"].values, offsets)
    # the native blocks of a whole-image call, padded by one invalid coarse pixel on each side
    pad = ((0, 0), (0, 0), (1, 1), (1, 1))
    padded = {k: np.pad(a[k], pad if a[k].ndim == 4 else pad[1:], constant_values=0) for k in a}
    expected, offsets = coarse_residual(
        a["fine"],
        a["fine_valid"],
        padded["coarse"],
        padded["coarse_valid"],
        padded["coarse_pred"],
        padded["coarse_pred_valid"],
        _offsets(dates),
        RATIO,
        (-RATIO, -RATIO),
    )
    out = run(cube, tmp_path / "residual.zarr", "coarse-residual", tile=16, dates=dates)
    np.testing.assert_array_equal(out["fused"].values, expected)
    np.testing.assert_array_equal(out["fine_offset_days"].values, offsets)
    # 2024-05-03: no coarse change where its coarse image is masked, else the nearer pair
    used = out["fine_offset_days"].values[dates.index("2024-05-03")]
    assert (used[:10, :10] == -32768).all() and (used[40:, 40:] == -2).all()
    # 2024-05-05: the nearer pair (05-06) is cloudy in rows 10:30, cols 40:70: the other serves
    used = out["fine_offset_days"].values[dates.index("2024-05-05")]
    assert (used[12:28, 42:68] == -4).all() and (used[40:, :] == 1).all()


def test_static_layer_method_writes_its_layer_and_uses_its_statistics(
    cube: Path, tmp_path: Path
) -> None:
    out = run(cube, tmp_path / "static.zarr", STATIC, tile=32, dates=["2024-05-04"], pairs="before")
    np.testing.assert_array_equal(out["class"].values[0], classes())
    ds = xr.open_zarr(cube, consolidated=False)
    change = (ds["coarse"].sel(time="2024-05-04") - ds["coarse"].sel(time="2024-05-01")).values
    c = classes()
    expected = ds["fine"].sel(time="2024-05-01").values.copy()
    for k in range(4):
        expected[:, c == k] += change[:, c == k].mean(axis=1)[:, None]
    np.testing.assert_allclose(out["fused"].values[0], expected, rtol=1e-5)
    assert out["class"].attrs["long_name"] == "class of the pixel"


def test_two_pair_method_skips_dates_after_the_last_fine_image(cube: Path, tmp_path: Path) -> None:
    """The daily update of a two-pair method: dates beyond the last fine image are skipped with a
    report line (and recorded in the store), the others are fused."""
    report = fuse(cube, tmp_path / "two.zarr", method=TWO_PAIR, tile=32, local_threads=2)
    after = [d for d in DAYS if d > PAIRS[-1]]
    assert report.dates == ["2024-05-02", "2024-05-03", "2024-05-04", "2024-05-05"]
    assert sorted(report.skipped_dates) == after
    assert all("only 1 usable pair(s)" in why for why in report.skipped_dates.values())
    assert f"skipped {after[0]}: only 1 usable pair(s)" in report.summary()
    attrs = xr.open_zarr(tmp_path / "two.zarr", consolidated=False).attrs
    import json

    assert sorted(json.loads(attrs["skipped_dates"])) == after
    with pytest.raises(ConfigError, match=r"no date .* can be fused with test-two-pair"):
        fuse(cube, tmp_path / "none.zarr", method=TWO_PAIR, dates=after[:2])


def test_a_method_without_the_native_grid_it_needs_is_refused(tmp_path: Path) -> None:
    truth = synthetic_scene((32, 32), 1, DAYS[:3], seed=1)
    plain = write_cube(tmp_path / "plain.zarr", {DAYS[0]: truth[DAYS[0]]}, block_mean(truth, 8))
    with pytest.raises(ConfigError, match=r"native grid, but .* has none"):
        fuse(plain, tmp_path / "out.zarr", method="coarse-residual")
    with pytest.raises(ConfigError, match=r"static layer\(s\) \['landcover'\]"):
        fuse(plain, tmp_path / "out.zarr", method=STATIC)
    assert not (tmp_path / "out.zarr").exists()


def test_composite_series_fuses_with_a_pair_tolerance(tmp_path: Path) -> None:
    """16-day coarse composites (dated by their first day) never share a day with the fine
    scenes: pairs need a tolerance, or the cube's declared composite period."""
    composites = [f"2024-{m:02d}-{d:02d}" for m, d in ((1, 1), (1, 17), (2, 2), (2, 18), (3, 5))]
    fine_days = ["2024-01-12", "2024-02-24"]  # inside the 1st and the 4th composite
    truth = synthetic_scene((40, 40), 1, composites + fine_days, seed=2)
    fine = {d: truth[d] for d in fine_days}
    coarse = block_mean({d: truth[d] for d in composites}, 8)
    cube = write_cube(tmp_path / "c.zarr", fine, coarse, native_ratio=8, chunk=16)
    with pytest.raises(ConfigError, match="try --pair-tolerance"):
        fuse(cube, tmp_path / "f.zarr", method="coarse-residual", tile=16)
    report = fuse(
        cube, tmp_path / "f.zarr", method="coarse-residual", tile=16, pair_tolerance_days=8
    )
    assert report.dates == composites  # no composite has a fine image of its own day
    pairs = xr.open_zarr(tmp_path / "f.zarr", consolidated=False).attrs["pairs_used"]
    # nearest composite within 8 days: 01-12 -> 01-17 (5 days), 02-24 -> 02-18 (6 days)
    assert '"2024-02-02": ["2024-01-12~2024-01-17", "2024-02-24~2024-02-18"]' in pairs
    declared = write_cube(
        tmp_path / "d.zarr",
        fine,
        coarse,
        native_ratio=8,
        chunk=16,
        attrs={"coarse_composite_days": 16},
    )
    fuse(declared, tmp_path / "g.zarr", method="coarse-residual", tile=16)  # no tolerance needed
    pairs = xr.open_zarr(tmp_path / "g.zarr", consolidated=False).attrs["pairs_used"]
    assert '"2024-02-02": ["2024-01-12~2024-01-01", "2024-02-24~2024-02-18"]' in pairs


def test_methods_command_and_parameter_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods"]) == 0
    text = capsys.readouterr().out
    for name in ("starfm", "nochange", "coarse-residual"):
        assert f"{name}:" in text
    assert "-p data_range=-100,10000  [data units; low,high with low < high]" in text
    starfm = get_method("starfm")
    assert starfm.make_params({"data_range": "-10000,10000"}).data_range == (-10000, 10000)
    assert starfm.make_params({"use_spatial": "false", "max_search_distance": "450"}) == (
        starfm.make_params({"use_spatial": False, "max_search_distance": 450.0})
    )
    with pytest.raises(ConfigError, match=r"data_range=5: expected 2 values .*low,high"):
        starfm.make_params({"data_range": 5})
    with pytest.raises(ConfigError, match="unknown starfm parameter"):
        starfm.make_params({"window": 3})
