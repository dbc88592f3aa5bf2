"""Metrics that compare (issue 19): fixed scales, coverage, SAM, and compare's refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from test_evaluate import BANDS, DATES, RATIO, write_cube, write_fused

from helpers.cli import one_line, run_stfcube_in_process
from stfcube.kernels import metrics as km
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.evaluate import compare, evaluate
from stfcube.pipeline.evaluate.scales import nominal_range


def _row(rows: list[dict], date: str, band: str | None = None) -> dict:
    return next(r for r in rows if r["date"] == date and (band is None or r["band"] == band))


@pytest.fixture(scope="module")
def cubes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A truth cube in reflectance x 10000, a full prediction and one with a gap."""
    root = tmp_path_factory.mktemp("comparable")
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:40, :44]
    scene = 2000 + 800 * np.sin(yy / 5.0) * np.cos(xx / 6.0)
    truth = np.stack([scene * g for g in (0.6, 0.8, 1.0, 1.8)])[None].repeat(DATES.size, axis=0)
    truth = (truth + 30 * rng.standard_normal(truth.shape)).astype(np.float32)
    valid = np.ones((DATES.size, 40, 44), dtype=bool)
    cube = write_cube(root / "truth.zarr", truth, valid)
    zarr.open_group(str(cube), mode="r+")["fine"].attrs["units"] = "reflectance x 10000"
    full = (truth + 80 * rng.standard_normal(truth.shape)).astype(np.float32)
    gap = full.copy()
    # the gap leaves out the truth's brightest pixels, and the worst predictions
    peak = np.unravel_index(np.argmax(truth[1, 3]), truth.shape[2:])
    gap[1, :, max(peak[0] - 3, 0) : peak[0] + 3, max(peak[1] - 3, 0) : peak[1] + 3] = np.nan
    gap[1, :, 30:, :] = np.nan
    full[1, :, 30:, :] += 400.0
    return {
        "root": root,
        "cube": cube,
        "truth": truth,
        "full": write_fused(root / "full.zarr", full, [1], cube),
        "gap": write_fused(root / "gap.zarr", gap, [1], cube),
        "gap_values": gap,
    }


def test_data_range_is_the_nominal_range_whatever_a_run_covered(cubes: dict) -> None:
    root = cubes["root"]
    full = evaluate(cubes["full"], cubes["cube"], root / "r_full")
    gap = evaluate(cubes["gap"], cubes["cube"], root / "r_gap")
    for rep in (full, gap):
        assert rep.settings["data_range"] == dict.fromkeys(BANDS, 10000.0)
        assert "nominal" in rep.settings["data_range_source"]
    row = _row(list(gap.band_rows), "2020-01-17", "nir")
    f, t = cubes["gap_values"][1, 3], cubes["truth"][1, 3]
    assert row["ssim"] == pytest.approx(km.ssim(f, t, np.isfinite(f), data_range=10000.0), rel=1e-9)
    assert row["psnr"] == pytest.approx(km.psnr(f, t, 10000.0, np.isfinite(f)), rel=1e-9)


def test_nominal_range_from_attributes() -> None:
    def var(**attrs: object) -> xr.DataArray:
        return xr.DataArray(np.zeros(2), attrs=attrs)

    assert nominal_range(var(units="reflectance x 10000"))[0] == 10000.0
    assert nominal_range(var(units="reflectance"))[0] == 1.0
    assert nominal_range(var(units="NDVI x 10000"))[0] == 20000.0
    assert nominal_range(var(units="K", valid_range=[200, 350]))[0] == 150.0
    assert nominal_range(var(valid_min=-1, valid_max=1, units="1"))[0] == 2.0
    assert nominal_range(var(units="K")) is None and nominal_range(var()) is None


def test_without_nominal_range_the_truth_fixes_it_not_the_run(cubes: dict, tmp_path: Path) -> None:
    plain = write_cube(tmp_path / "plain.zarr", cubes["truth"], np.ones((4, 40, 44), bool))
    fused = {
        name: write_fused(tmp_path / f"{name}.zarr", values, [1], plain)
        for name, values in (("full", cubes["truth"] + 5), ("gap", cubes["gap_values"]))
    }
    reps = [evaluate(fused[n], plain, tmp_path / f"r_{n}") for n in ("full", "gap")]
    t = cubes["truth"][1]
    expected = {b: float(t[i].max() - t[i].min()) for i, b in enumerate(BANDS)}
    for rep in reps:
        assert rep.settings["data_range"] == pytest.approx(expected, rel=1e-6)
        assert "truth max - min" in rep.settings["data_range_source"]
        assert any("no nominal data range" in n for n in rep.notes)


def test_every_row_has_count_and_coverage(cubes: dict) -> None:
    rep = evaluate(cubes["gap"], cubes["cube"], cubes["root"] / "r_cov")
    gap = cubes["gap_values"][1, 0]
    row = _row(list(rep.band_rows), "2020-01-17", "blue")
    assert row["truth_count"] == 40 * 44
    assert row["count"] == np.isfinite(gap).sum()
    assert row["coverage"] == pytest.approx(np.isfinite(gap).mean())
    mean = _row(list(rep.band_rows), "mean", "blue")
    assert mean["coverage"] == pytest.approx(row["coverage"])
    date = _row(list(rep.date_rows), "2020-01-17")
    assert date["coverage"] == pytest.approx(row["coverage"])
    assert date["days_from_pair"] == 16  # pairs_used: 2020-01-01
    assert any("not predicted" in n for n in rep.notes)
    md = (rep.out_dir / "report.md").read_text()
    assert md.index("## Summary") < md.index("## Per date")
    assert "| blue | 1," in md and "%" in md
    data = json.loads((rep.out_dir / "metrics.json").read_text())
    assert data["provenance"]["method"] == "starfm"
    assert data["provenance"]["pairs_used"] == {"2020-01-17": ["2020-01-01"]}


def test_sam_only_for_several_bands(cubes: dict) -> None:
    one = evaluate(cubes["full"], cubes["cube"], cubes["root"] / "r_one", bands=["red"])
    assert _row(list(one.date_rows), "2020-01-17")["sam"] is None
    assert any("SAM not computed" in n for n in one.notes)
    two = evaluate(cubes["full"], cubes["cube"], cubes["root"] / "r_two", bands=["red", "nir"])
    assert _row(list(two.date_rows), "2020-01-17")["sam"] > 0


def _with_attrs(path: Path, **attrs: object) -> Path:
    zarr.open_group(str(path), mode="r+").attrs.update(attrs)
    return path


def test_ergas_uses_the_real_resolution_ratio(cubes: dict, tmp_path: Path) -> None:
    truth = cubes["truth"]
    on_fine_grid = _with_attrs(
        write_cube(tmp_path / "c1.zarr", truth, np.ones((4, 40, 44), bool)), coarse_ratio=1
    )
    fused = write_fused(tmp_path / "f1.zarr", truth + 5, [1], on_fine_grid)
    rep = evaluate(fused, on_fine_grid, tmp_path / "r1")
    assert rep.settings["resolution_ratio"] is None
    assert _row(list(rep.date_rows), "2020-01-17")["ergas"] is None
    assert any("ERGAS not computed" in n for n in rep.notes)
    # a source cube stating the real ratio (the manifest's coarse_ratio) wins over the truth's
    source = _with_attrs(
        write_cube(tmp_path / "c16.zarr", truth, np.ones((4, 40, 44), bool)), coarse_ratio=16
    )
    fused16 = write_fused(tmp_path / "f16.zarr", truth + 5, [1], source)
    rep16 = evaluate(fused16, on_fine_grid, tmp_path / "r16")
    assert rep16.settings["resolution_ratio"] == pytest.approx(1 / 16)
    # a native coarse grid gives the ratio from its pixel size
    native = xr.open_zarr(cubes["cube"], consolidated=False).load()
    x_coarse = native["x"].values[:: 2 * RATIO][:2] + 60.0
    native = native.assign_coords(x_coarse=x_coarse).assign_attrs(coarse_ratio=1)
    native.to_zarr(tmp_path / "native.zarr", mode="w", consolidated=False)
    fused_n = write_fused(tmp_path / "fn.zarr", truth + 5, [1], tmp_path / "native.zarr")
    rep_n = evaluate(fused_n, cubes["cube"], tmp_path / "rn")
    assert rep_n.settings["resolution_ratio"] == pytest.approx(1 / (2 * RATIO))
    assert rep_n.settings["resolution_ratio_source"] == "the cube's native coarse grid"


def test_compare_never_ranks_a_partial_run_best(cubes: dict) -> None:
    root = cubes["root"]
    cmp = compare(
        [cubes["full"], cubes["gap"]], root / "cmp", labels=["full", "gap"], truth=cubes["cube"]
    )
    assert cmp.labels == ("full", "gap")
    with (root / "cmp" / "compare.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    nir = {r["method"]: r for r in rows if r["table"].startswith("band nir")}
    # the gap run skipped the worst pixels: lower RMSE on its own pixels, yet not ranked best
    assert float(nir["gap"]["rmse"]) < float(nir["full"]["rmse"])
    assert nir["gap"]["ranked"] == "False" and nir["gap"]["best"] == ""
    assert "rmse" in nir["full"]["best"].split()
    assert float(nir["gap"]["coverage"]) < 1.0 == float(nir["full"]["coverage"])
    md = (root / "cmp" / "compare.md").read_text()
    assert "gap †" in md and "not ranked" in md


def test_compare_refuses_other_truths_or_dates(cubes: dict, tmp_path: Path) -> None:
    root = cubes["root"]
    first = evaluate(cubes["full"], cubes["cube"], tmp_path / "a")
    other_date = write_fused(tmp_path / "d.zarr", cubes["truth"], [2], cubes["cube"])
    later = evaluate(other_date, cubes["cube"], tmp_path / "b")
    with pytest.raises(InputError, match="same dates"):
        compare([first.out_dir, later.out_dir], tmp_path / "c1")
    copy = write_cube(tmp_path / "copy.zarr", cubes["truth"], np.ones((4, 40, 44), bool))
    elsewhere = evaluate(cubes["full"], copy, tmp_path / "e")
    with pytest.raises(InputError, match="same truth"):
        compare([first.out_dir, elsewhere.out_dir], tmp_path / "c2")
    assert not (tmp_path / "c1").exists() and not (tmp_path / "c2").exists()
    result = run_stfcube_in_process("compare", first.out_dir, later.out_dir, "--out", root / "c3")
    assert result.returncode == 2, result.stderr
    assert "same dates" in one_line(result.stderr) and "Traceback" not in result.stderr


def test_days_from_pair_reads_fine_and_composite_pairs() -> None:
    from stfcube.pipeline.evaluate.run import days_from_pair

    pairs = {"2015-09-30": ["2015-09-05~2015-08-29", "2015-12-10~2015-12-03"]}
    assert days_from_pair(pairs, ["2015-09-30", "2015-10-16"]) == {
        "2015-09-30": 25,
        "2015-10-16": None,
    }
