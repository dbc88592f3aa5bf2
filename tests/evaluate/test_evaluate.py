"""Evaluation over cubes: metrics, masks, empty dates, the report files and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import typer
import xarray as xr
import yaml
from typer.testing import CliRunner

from stfcube.kernels import metrics as km
from stfcube.pipeline.commands.evaluate import compare_command, evaluate_command
from stfcube.pipeline.engine.run import fuse
from stfcube.pipeline.errors import ConfigError, InputError, OutputError
from stfcube.pipeline.evaluate import compare, evaluate

BANDS = ["blue", "green", "red", "nir"]
DATES = pd.to_datetime(["2020-01-01", "2020-01-17", "2020-02-02", "2020-02-18"])
NY, NX, CHUNK, RATIO = 40, 44, 16, 4
PIXEL = 30.0


def _coords() -> dict[str, object]:
    return {
        "time": DATES,
        "band": BANDS,
        "y": 5000.0 - PIXEL * (np.arange(NY) + 0.5),
        "x": 1000.0 + PIXEL * (np.arange(NX) + 0.5),
    }


def _scene(rng: np.random.Generator) -> np.ndarray:
    """Smooth reflectance-like (time, band, y, x) field with per-date brightening."""
    yy, xx = np.meshgrid(np.arange(NY), np.arange(NX), indexing="ij")
    base = 0.2 + 0.1 * np.sin(yy / 6.0) * np.cos(xx / 7.0)
    gains = np.array([0.6, 0.8, 1.0, 1.8])[:, None, None]
    seasonal = np.linspace(1.0, 1.3, DATES.size)[:, None, None, None]
    noise = 0.01 * rng.standard_normal((DATES.size, len(BANDS), NY, NX))
    return (seasonal * gains * base + noise).astype(np.float32)


def _block_mean(fine: np.ndarray) -> np.ndarray:
    shape = (*fine.shape[:2], NY // RATIO, RATIO, NX // RATIO, RATIO)
    coarse = fine.reshape(shape).mean(axis=(3, 5))
    return np.repeat(np.repeat(coarse, RATIO, axis=2), RATIO, axis=3)


def write_cube(path: Path, fine: np.ndarray, fine_valid: np.ndarray) -> Path:
    """Cube store (schema cube/1) with fine, fine_valid and block-mean coarse on the fine grid."""
    dims4, dims3 = ("time", "band", "y", "x"), ("time", "y", "x")
    ds = xr.Dataset(
        {
            "fine": (dims4, np.where(fine_valid[:, None], fine, np.nan).astype(np.float32)),
            "fine_valid": (dims3, fine_valid),
            "coarse": (dims4, _block_mean(fine).astype(np.float32)),
            "coarse_valid": (dims3, np.ones_like(fine_valid)),
        },
        coords={
            **_coords(),
            "fine_observed": ("time", np.ones(DATES.size, dtype=bool)),
            "coarse_observed": ("time", np.ones(DATES.size, dtype=bool)),
        },
        attrs={"stfcube_schema": "cube/1", "coarse_ratio": RATIO},
    )
    chunks = {"time": 1, "band": 1, "y": CHUNK, "x": CHUNK}
    ds.chunk(chunks).to_zarr(path, mode="w", consolidated=False)
    return path


def write_fused(
    path: Path,
    fused: np.ndarray,
    dates: list[int],
    source: Path | None,
    pairs: dict[str, list[str]] | None = None,
) -> Path:
    """Fused store (schema fused/1) holding ``fused[dates]`` (pairs: 2020-01-01 by default)."""
    coords = _coords() | {"time": DATES[dates]}
    pairs = pairs or {DATES[d].strftime("%Y-%m-%d"): ["2020-01-01"] for d in dates}
    attrs = {"stfcube_schema": "fused/1", "method": "starfm", "pairs_used": json.dumps(pairs)}
    if source is not None:
        attrs["source_cube"] = str(source)
    data = fused[dates]
    ds = xr.Dataset(
        {
            "fused": (("time", "band", "y", "x"), data),
            "quality": (("time", "band", "y", "x"), np.isfinite(data).astype(np.uint16)),
        },
        coords=coords,
        attrs=attrs,
    )
    ds.chunk({"time": 1, "band": 1, "y": CHUNK, "x": CHUNK}).to_zarr(
        path, mode="w", consolidated=False
    )
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Truth cube, a fused store with a NaN patch, masked truth pixels and an all-invalid date."""
    root = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(7)
    truth = _scene(rng)
    valid = np.ones((DATES.size, NY, NX), dtype=bool)
    valid[1, 5:12, 30:40] = False  # a cloud on date 1
    valid[3] = False  # date 3: nothing observed usable
    cube = write_cube(root / "truth.zarr", truth, valid)
    fused = truth + 0.02 * rng.standard_normal(truth.shape).astype(np.float32) + 0.005
    fused[1, :, 20:26, 2:9] = np.nan  # no prediction there
    fused_path = write_fused(root / "fused.zarr", fused, [1, 2, 3], cube)
    return {
        "root": root,
        "cube": cube,
        "fused": fused_path,
        "truth": truth,
        "valid": valid,
        "prediction": fused,
    }


@pytest.fixture(scope="module")
def report(site: dict[str, object]) -> object:
    return evaluate(
        site["fused"],
        site["cube"],
        site["root"] / "report",
        pixels=[(10, 10)],
        points=[(1100, 4900)],
    )


def _row(rows: list[dict], date: str, band: str | None = None) -> dict:
    return next(r for r in rows if r["date"] == date and (band is None or r["band"] == band))


def test_metrics_match_numpy_on_the_masked_pixels(site: dict, report: object) -> None:
    data = json.loads((report.out_dir / "metrics.json").read_text())
    truth, fused, valid = site["truth"], site["prediction"], site["valid"]
    mask = valid[1] & np.isfinite(fused[1, 2])  # date 1, band red
    row = _row(data["per_band"], "2020-01-17", "red")
    assert row["status"] == "ok"
    assert row["count"] == mask.sum() == NY * NX - 70 - 42
    diff = fused[1, 2][mask].astype(np.float64) - truth[1, 2][mask]
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean(diff**2)), rel=1e-9)
    assert row["bias"] == pytest.approx(diff.mean(), rel=1e-9)
    assert row["r"] == pytest.approx(np.corrcoef(fused[1, 2][mask], truth[1, 2][mask])[0, 1])
    data_range = row["data_range"]
    t_red = truth[1:4, 2][valid[1:4]]  # evaluated dates 1..3, valid truth pixels
    assert data_range == pytest.approx(float(t_red.max() - t_red.min()), rel=1e-6)
    expected_ssim = km.ssim(fused[1, 2], truth[1, 2], valid[1], data_range=data_range)
    assert row["ssim"] == pytest.approx(expected_ssim, rel=1e-9)


def test_date_without_valid_pixels_is_reported_not_crashed(report: object) -> None:
    data = json.loads((report.out_dir / "metrics.json").read_text())
    for band in BANDS:
        row = _row(data["per_band"], "2020-02-18", band)
        assert row["status"] == "no valid pixels"
        assert row["count"] == 0
        assert row["rmse"] is None and row["ssim"] is None
    date_row = _row(data["per_date"], "2020-02-18")
    assert date_row == {
        "date": "2020-02-18",
        "status": "no valid pixels",
        "days_from_pair": 48,
        "count": 0,
        "truth_count": 0,
        "coverage": None,
        "sam_count": 0,
        "sam": None,
        "ergas": None,
    }
    assert any("2020-02-18: no valid pixels" in n for n in data["notes"])
    mean = _row(data["per_band"], "mean", "red")
    dated = [_row(data["per_band"], d, "red")["rmse"] for d in ("2020-01-17", "2020-02-02")]
    assert mean["rmse"] == pytest.approx(np.mean(dated))


def test_sam_and_ergas_per_date(site: dict, report: object) -> None:
    data = json.loads((report.out_dir / "metrics.json").read_text())
    truth, fused, valid = site["truth"], site["prediction"], site["valid"]
    row = _row(data["per_date"], "2020-02-02")
    assert row["sam"] == pytest.approx(km.sam(fused[2], truth[2], valid[2]), rel=1e-9)
    assert row["ergas"] == pytest.approx(
        km.ergas(fused[2], truth[2], 1 / RATIO, valid[2]), rel=1e-9
    )
    assert data["settings"]["resolution_ratio"] == pytest.approx(1 / RATIO)


def test_report_files_are_complete(report: object) -> None:
    out = report.out_dir
    expected = [
        "metrics.json",
        "metrics.csv",
        "report.md",
        "report.html",
        "timeseries.png",
        *(
            f"{kind}_{d}.png"
            for kind in ("quicklook", "scatter")
            for d in ("2020-01-17", "2020-02-02", "2020-02-18")
        ),
    ]
    for name in expected:
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0
    # and the marker that lets a later --overwrite replace this folder (and only such folders)
    assert sorted(p.name for p in out.iterdir()) == sorted([*expected, ".stfcube-report"])
    html = (out / "report.html").read_text()  # pictures linked, not embedded: the page stays small
    assert html.count('<img alt="') == 7 and "base64" not in html
    assert "<style>" in html and 'src="quicklook_2020-01-17.png"' in html
    md = (out / "report.md").read_text()
    assert "](quicklook_2020-01-17.png)" in md and "| 2020-02-02 | red |" in md
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    run_rows = [r for r in rows if r["method"] == "starfm"]  # then the baseline's (nochange)
    assert len(run_rows) == 3 * len(BANDS) + len(BANDS) + 3 + 1  # date x band, means, dates, mean
    assert {r["band"] for r in rows if r["sam"]} == {"all"}
    assert report.bands == tuple(BANDS) and report.method == "starfm"


def test_evaluate_refuses_to_overwrite_and_checks_inputs(site: dict, report: object) -> None:
    with pytest.raises(OutputError, match="not empty"):
        evaluate(site["fused"], site["cube"], report.out_dir)
    with pytest.raises(InputError, match="fused store"):
        evaluate(site["cube"], site["cube"], site["root"] / "bad")
    with pytest.raises(InputError, match=r"neither catalog\.json nor a manifest"):
        evaluate(site["fused"], site["root"], site["root"] / "bad")
    with pytest.raises(ConfigError, match="2021-01-01"):
        evaluate(site["fused"], site["cube"], site["root"] / "bad", dates=["2021-01-01"])
    with pytest.raises(ConfigError, match="outside"):
        evaluate(site["fused"], site["cube"], site["root"] / "bad", points=[(0.0, 0.0)])
    assert not (site["root"] / "bad").exists()
    assert not list(site["root"].glob(".bad.*"))


def test_given_data_range_band_selection_and_unknown_ratio(site: dict, tmp_path: Path) -> None:
    fused = write_fused(tmp_path / "f.zarr", site["prediction"], [2], None)
    rep = evaluate(
        fused, site["cube"], tmp_path / "r", bands=["red"], data_range=1.0, resolution_ratio=None
    )
    assert rep.bands == ("red",)
    row = _row(list(rep.band_rows), "2020-02-02", "red")
    truth, pred = site["truth"][2, 2], site["prediction"][2, 2]
    assert row["psnr"] == pytest.approx(km.psnr(pred, truth, 1.0), rel=1e-9)
    assert row["data_range"] == 1.0
    # no source cube: the truth cube's coarse_ratio still gives ERGAS
    assert rep.settings["resolution_ratio"] == pytest.approx(1 / RATIO)
    rep2 = evaluate(fused, site["cube"], tmp_path / "r2", resolution_ratio="30/480")
    assert rep2.settings["resolution_ratio"] == pytest.approx(0.0625)


def _write_truth_scenes(root: Path, truth: np.ndarray, dates: list[int]) -> Path:
    """GeoTIFF truth scenes on the cube grid plus a manifest listing them with role truth."""
    transform = rasterio.transform.from_origin(1000.0, 5000.0, PIXEL, PIXEL)
    root.mkdir()
    scenes = []
    for d in dates:
        name = f"truth_{DATES[d]:%Y%m%d}.tif"
        profile = {
            "driver": "GTiff",
            "width": NX,
            "height": NY,
            "count": len(BANDS),
            "dtype": "int16",
            "crs": "EPSG:32633",
            "transform": transform,
            "nodata": -9999,
        }
        with rasterio.open(root / name, "w", **profile) as dst:
            dst.write(np.round(truth[d] * 10000).astype(np.int16))
        scenes.append({"role": "truth", "date": f"{DATES[d]:%Y-%m-%d}", "path": name})
    manifest = {"bands": BANDS, "coarse_ratio": RATIO, "scenes": scenes}
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return root


def test_truth_scenes_are_ingested_on_the_fly(site: dict, tmp_path: Path) -> None:
    scenes = _write_truth_scenes(tmp_path / "scenes", site["truth"], [2])
    fused = write_fused(tmp_path / "f.zarr", site["prediction"] * 10000, [2], None)
    rep = evaluate(fused, scenes, tmp_path / "r", data_range=10000.0)
    row = _row(list(rep.band_rows), "2020-02-02", "nir")
    truth = np.round(site["truth"][2, 3] * 10000)
    expected = km.rmse(site["prediction"][2, 3] * 10000, truth)
    assert row["rmse"] == pytest.approx(expected, rel=1e-6)
    assert any("ingested" in n for n in rep.notes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zarr", "r", "scenes"]


def test_compare_highlights_the_better_method(site: dict, report: object, tmp_path: Path) -> None:
    worse = site["prediction"] + 0.05
    worse_path = write_fused(tmp_path / "worse.zarr", worse, [1, 2, 3], site["cube"])
    cmp = compare(
        [report.out_dir, worse_path],
        tmp_path / "cmp",
        labels=["good", "biased"],
        truth=site["cube"],
    )
    assert cmp.labels == ("good", "biased")
    with (tmp_path / "cmp" / "compare.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    red = {r["method"]: r for r in rows if r["table"].startswith("band red")}
    assert "rmse" in red["good"]["best"].split() and "rmse" not in red["biased"]["best"].split()
    assert float(red["good"]["rmse"]) < float(red["biased"]["rmse"])
    assert "**" in (tmp_path / "cmp" / "compare.md").read_text()
    assert 'class="best"' in (tmp_path / "cmp" / "compare.html").read_text()
    assert (tmp_path / "cmp" / "biased" / "metrics.json").is_file()


def test_cli_evaluate_and_compare(site: dict, report: object, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("compare")(compare_command)
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(site["fused"]),
            str(site["cube"]),
            "--out",
            str(out),
            "--date",
            "2020-02-02",
            "--pixel",
            "3,4",
            "--point",
            "1100,4900",
            "--resolution-ratio",
            "30/480",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "metrics.json").read_text())
    assert data["dates"] == ["2020-02-02"]
    assert data["settings"]["resolution_ratio"] == pytest.approx(0.0625)
    # compare takes evaluations of the same truth and dates (other dates: refused, tested in
    # test_comparable_metrics.py)
    labels = ["--label", "a", "--label", "b"]
    result = runner.invoke(
        app, ["compare", str(out), str(out), "--out", str(tmp_path / "c"), *labels]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "compare.csv").is_file()
    bad = runner.invoke(
        app,
        [
            "evaluate",
            str(site["fused"]),
            str(site["cube"]),
            "--out",
            str(tmp_path / "x"),
            "--pixel",
            "nonsense",
        ],
    )
    assert bad.exit_code != 0


def test_picture_dates_are_spread_evenly() -> None:
    from stfcube.pipeline.evaluate.figures import picture_indices

    assert picture_indices(5, None) == [0, 1, 2, 3, 4]
    assert picture_indices(5, 8) == [0, 1, 2, 3, 4]
    assert picture_indices(27, 8) == [0, 4, 7, 11, 15, 19, 22, 26]
    assert picture_indices(27, 1) == [0]


def test_overwrite_replaces_only_a_report_stfcube_wrote(site: dict, report: object) -> None:
    """``--overwrite`` of evaluate/compare never deletes a user's folder or an input."""
    documents = site["root"] / "documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("four years of work")
    with pytest.raises(OutputError, match="not something stfcube wrote"):
        evaluate(site["fused"], site["cube"], documents, overwrite=True)
    assert (documents / "thesis.txt").read_text() == "four years of work"
    with pytest.raises(OutputError, match="the output holds the input"):
        evaluate(site["fused"], site["cube"], site["root"], overwrite=True)
    with pytest.raises(OutputError, match="is a stfcube fused"):
        compare([report.out_dir, report.out_dir], site["fused"], overwrite=True)
    assert (site["fused"] / "zarr.json").is_file()
    again = evaluate(site["fused"], site["cube"], report.out_dir, overwrite=True)
    assert again.out_dir == report.out_dir and (report.out_dir / ".stfcube-report").is_file()


# --- the no-change baseline beside the run (issue 19) -----------------------------------------


def _rows(rows: list[dict], date: str) -> dict[str, dict]:
    return {r["band"]: r for r in rows if r["date"] == date}


def test_baseline_is_the_pair_image_on_the_run_pixels(site: dict, report: object) -> None:
    """The fixture's run used the 2020-01-01 pair for every date: the baseline is that image,
    scored where the run predicted (its NaN patch on 2020-01-17 left out), same scales."""
    truth, valid, prediction = site["truth"], site["valid"], site["prediction"]
    base = report.baseline
    assert base["method"] == "nochange"
    for ti, date in ((1, "2020-01-17"), (2, "2020-02-02")):
        rows, run_rows = _rows(base["per_band"], date), _rows(list(report.band_rows), date)
        for bi, band in enumerate(BANDS):
            used = valid[ti] & valid[0] & np.isfinite(prediction[ti, bi])
            assert rows[band]["count"] == run_rows[band]["count"] == used.sum()
            assert rows[band]["coverage"] == run_rows[band]["coverage"]
            expected = km.rmse(truth[0, bi][used], truth[ti, bi][used])
            assert rows[band]["rmse"] == pytest.approx(expected, rel=1e-6)
            assert rows[band]["data_range"] == run_rows[band]["data_range"]
    out = report.out_dir
    with (out / "metrics.csv").open() as fh:
        csv_rows = [r for r in csv.DictReader(fh) if r["method"] == "nochange"]
    assert len(csv_rows) == len(report.band_rows) + len(report.date_rows)
    assert json.loads((out / "metrics.json").read_text())["baseline"] == base
    md = (out / "report.md").read_text()
    summary = md.split("## Run")[0]
    assert "no-change RMSE" in summary and "better (" in summary
    assert "no-change RMSE |" in md.split("## Per date and band")[1]
    assert "no-change RMSE" in (out / "report.html").read_text()
    metrics = report.metrics()
    assert float(metrics["nochange_rmse"].sel(time="2020-02-02", band="red")) == pytest.approx(
        _rows(base["per_band"], "2020-02-02")["red"]["rmse"]
    )


def test_baseline_equals_a_nochange_fuse_on_the_same_pixels(site: dict, tmp_path: Path) -> None:
    nochange = fuse(
        site["cube"], tmp_path / "nochange.zarr", method="nochange", dates=["2020-02-02"], tile=16
    )
    pairs = json.loads(xr.open_zarr(nochange.out_path).attrs["pairs_used"])
    run = write_fused(tmp_path / "run.zarr", site["prediction"], [2], site["cube"], pairs)
    with_baseline = evaluate(run, site["cube"], tmp_path / "run", max_pictures=0)
    alone = evaluate(nochange.out_path, site["cube"], tmp_path / "alone", max_pictures=0)
    assert alone.baseline is None and any("itself nochange" in n for n in alone.notes)
    own, base = _rows(list(alone.band_rows), "2020-02-02"), with_baseline.baseline["per_band"]
    for band, row in _rows(base, "2020-02-02").items():
        assert row["count"] == own[band]["count"]  # the run predicted every pixel
        for metric in ("rmse", "mae", "bias", "ssim"):
            assert row[metric] == pytest.approx(own[band][metric], rel=1e-9)
    # a compare of the two reports ranks the runs and shows the baseline once (here: not at all,
    # nochange is one of the runs); of the run against itself, once, never ranked
    compare([with_baseline.out_dir, with_baseline.out_dir], tmp_path / "cmp", labels=["a", "b"])
    with (tmp_path / "cmp" / "compare.csv").open() as fh:
        red = [r for r in csv.DictReader(fh) if r["table"].startswith("band red")]
    assert [r["method"] for r in red] == ["a", "b", "nochange (baseline, pixels of a)"]
    assert red[2]["ranked"] == "False" and red[2]["best"] == ""
    assert "rmse" in red[0]["best"].split()
    assert "†" not in (tmp_path / "cmp" / "compare.md").read_text()


def test_no_source_cube_means_a_note_not_an_error(site: dict, tmp_path: Path) -> None:
    fused = xr.open_zarr(site["fused"], consolidated=False).drop_attrs()
    fused.attrs.update(method="starfm")
    rep = evaluate(fused, site["cube"], tmp_path / "r", max_pictures=0)
    assert rep.baseline is None
    assert any(n.startswith("no-change baseline not computed") for n in rep.notes)
    assert "no-change baseline: not computed" in (tmp_path / "r" / "report.md").read_text()
    assert "nochange_rmse" not in rep.metrics()
