"""Accuracy of every method against truth, through the normal pipeline (issues 13, 14, 19).

Run as ``python3 dev.py bench accuracy [--datasets ...] [--methods ...] [--out DIR]``. For each
data set: ingest (manifests written here, scene paths into ``../shared/data``), fuse with every
method that can run, ``evaluate`` each run, ``compare`` them (reports under ``--out``), and print
one table per data set: method x band, RMSE, r, SSIM, pixel count, coverage (share of the valid
truth pixels predicted) and fusion runtime. No direction is asserted: where a method loses to a
baseline, the table shows it. SSIM/PSNR use the cubes' nominal range (reflectance x 10000:
10000; NDVI x 10000: 20000).

Data sets:

- ``kranj_ts``: pairs 2020-03-08 (DOY 068) + 2020-04-02 (093) -> truth 2020-03-17 (077), which
  is left out of the input cube; MODIS on the 30 m grid, ERGAS with 30/463.3 m.
- ``ifsdaf_ndvi_ts``: the clear-enough Landsat NDVI dates around the truth (2015-09-05, 2015-12-10,
  CFMask-masked) with the 16-day MODIS composites on their 240 m grid (pairs matched within 8 days
  to the composite holding the Landsat date); the truth (DOY 287) is predicted with the composite
  that holds it (dated 2015-09-30, DOY 273-288), as IFSDAF does. No class map: the shipped
  ``landcover`` was made from the truth image itself.
- ``fsdaf_lgc_sim``: one pair 2004-11-26 -> 2004-12-28; two-pair methods cannot run (listed as
  such); FSDAF with the SVM class map and with ISODATA.
- ``simulated``: ``stfcube simulate`` 512 px, 17 days, clear fine images on days 0 and 16 (two
  pairs), truth on days 4, 8 and 12 (a harvest and a flood happen in between).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import yaml
import zarr

from stfcube.pipeline.engine.run import fuse
from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.evaluate import compare, evaluate
from stfcube.pipeline.ingest.scenes import ingest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STFCUBE_SHARED", ROOT.parent / "shared"))
MANIFESTS = ROOT / "tests" / "helpers" / "fixtures" / "manifests"
NDVI = {"starfm": {"data_range": "-10000,10000"}, "estarfm": {"data_range": "-10000,10000"}}


@dataclass(frozen=True)
class Run:
    """One fusion of a data set: label, method, pair rule and parameters."""

    label: str
    method: str
    pairs: str | int | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    """An ingested data set: input cube, truth, dates and the options of fuse and evaluate."""

    cube: Path
    truth: Path
    dates: list[str]
    runs: list[Run]
    fuse_options: dict[str, Any] = field(default_factory=dict)
    resolution_ratio: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)


def _write_manifest(path: Path, base: str, keep: Callable[[dict[str, Any]], bool]) -> Path:
    """A copy of a test manifest keeping the scenes ``keep`` accepts, its root made absolute."""
    manifest = yaml.safe_load((MANIFESTS / f"{base}.yaml").read_text())
    manifest["root"] = str((MANIFESTS / manifest["root"]).resolve())
    manifest["scenes"] = [s for s in manifest["scenes"] if keep(s)]
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def _ingest(manifest: Path, cube: Path, roles: tuple[str, ...], chunk: int = 256) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CRS in the ENVI/GeoTIFF test sets
        ingest(manifest, cube, chunk=chunk, roles=roles)
    return cube


def _day(scene: dict[str, Any]) -> str:
    return str(scene.get("date", ""))


def _methods_two_pairs(ndvi: bool = False) -> list[Run]:
    extra = NDVI if ndvi else {}
    return [
        Run("starfm (1 pair)", "starfm", 1, extra.get("starfm", {})),
        Run("starfm (2 pairs)", "starfm", 2, extra.get("starfm", {})),
        Run("estarfm", "estarfm", 2, extra.get("estarfm", {})),
    ]


def prepare_kranj(work: Path) -> Prepared:
    """Pairs 068 + 093, truth 077 (left out of the inputs)."""
    truth_day = "2020-03-17"
    inputs = _write_manifest(
        work / "inputs.yaml",
        "kranj_ts",
        lambda s: not (s["role"] == "fine" and _day(s) in {truth_day, "2020-04-09"}),
    )
    truth = _write_manifest(
        work / "truth.yaml", "kranj_ts", lambda s: s["role"] == "fine" and _day(s) == truth_day
    )
    truth_yaml = yaml.safe_load(truth.read_text())
    decoding = truth_yaml["defaults"]["fine"]  # the fine scenes' scale and nodata
    truth_yaml["scenes"] = [{**s, **decoding, "role": "truth"} for s in truth_yaml["scenes"]]
    truth.write_text(yaml.safe_dump(truth_yaml, sort_keys=False))
    return Prepared(
        cube=_ingest(inputs, work / "cube.zarr", ("fine", "coarse")),
        truth=_ingest(truth, work / "truth.zarr", ("truth",)),
        dates=[truth_day],
        runs=[
            *_methods_two_pairs(),
            Run("fsdaf (ISODATA)", "fsdaf", 1, {"mode": "seamless"}),
            Run("fitfc", "fitfc", 1, {"coarse_grid": "fine", "regression_radius": 8}),
            Run("nochange", "nochange", 1),
            Run("coarse-residual", "coarse-residual", 1),
        ],
        resolution_ratio="30/463.3",
    )


def prepare_ifsdaf(work: Path) -> Prepared:
    """Clear-enough Landsat dates around the truth, composites on their native grid."""
    fine_days = {"2015-09-05", "2015-12-10"}
    inputs = _write_manifest(
        work / "inputs.yaml",
        "ifsdaf_ndvi_ts",
        lambda s: s["role"] == "coarse" or (s["role"] == "fine" and _day(s) in fine_days),
    )
    truth = _write_manifest(work / "truth.yaml", "ifsdaf_ndvi_ts", lambda s: s["role"] == "truth")
    truth_yaml = yaml.safe_load(truth.read_text())
    truth_yaml["scenes"] = [{**s, "date": "2015-09-30"} for s in truth_yaml["scenes"]]
    truth.write_text(yaml.safe_dump(truth_yaml, sort_keys=False))
    ndvi_fsdaf = {"dn_min": -10000, "dn_max": 10000, "background": -9999, "background_band": 0}
    ndvi_fsdaf |= {"mode": "seamless", "scale_factor": 8}
    return Prepared(
        cube=_ingest(inputs, work / "cube.zarr", ("fine", "coarse")),
        truth=_ingest(truth, work / "truth.zarr", ("truth",)),
        dates=["2015-09-30"],
        runs=[
            *_methods_two_pairs(ndvi=True),
            Run("fsdaf (ISODATA)", "fsdaf", 1, ndvi_fsdaf),
            Run("fitfc", "fitfc", 1, {"similarity": "all_bands", "red_band": 0, "nir_band": 0}),
            Run("nochange", "nochange", 1),
            Run("coarse-residual", "coarse-residual", 1),
        ],
        fuse_options={"pair_tolerance_days": 8},
        skipped={"fsdaf (class map)": "the shipped landcover map was made from the truth image"},
    )


def _add_class_map(cube: Path, name: str, classes: np.ndarray) -> None:
    """Write a (y, x) class map into the cube as a static layer (the cube's attributes kept)."""
    ds = xr.open_zarr(cube, consolidated=False)
    attrs = dict(zarr.open_group(str(cube), mode="r").attrs.asdict())
    layer = xr.Dataset({name: (("y", "x"), classes)}, coords={"y": ds["y"], "x": ds["x"]})
    layer.drop_vars(["y", "x"]).chunk(256).to_zarr(cube, mode="a", consolidated=False)
    zarr.open_group(str(cube), mode="r+").attrs.update(attrs)


def prepare_lgc(work: Path) -> Prepared:
    """One pair; FSDAF with the SVM class map and with ISODATA."""
    manifest = _write_manifest(work / "manifest.yaml", "fsdaf_lgc_sim", lambda s: True)
    cube = _ingest(manifest, work / "cube.zarr", ("fine", "coarse"))
    raw = np.fromfile(SHARED / "data/fsdaf_lgc_sim/Landsat20041126_SVM_classification", np.uint8)
    _add_class_map(cube, "svm_class", raw.reshape(480, 480))
    one_pair = "only one pair (2004-11-26) in this data set"
    return Prepared(
        cube=cube,
        truth=_ingest(manifest, work / "truth.zarr", ("truth",)),
        dates=["2004-12-28"],
        runs=[
            Run("starfm (1 pair)", "starfm", 1),
            Run("fsdaf (SVM class map)", "fsdaf", 1, {"class_map": "svm_class"}),
            Run("fsdaf (ISODATA)", "fsdaf", 1),
            Run("fitfc", "fitfc", 1, {"coarse_grid": "fine", "regression_radius": 16}),
            Run("nochange", "nochange", 1),
            Run("coarse-residual", "coarse-residual", 1),
        ],
        skipped={"starfm (2 pairs)": one_pair, "estarfm": one_pair},
    )


def prepare_simulated(work: Path) -> Prepared:
    """``stfcube simulate`` 512 px: clear pairs on days 0 and 16, truth on days 4, 8, 12."""
    from stfcube.pipeline.simulate.site import simulate_site

    site = work / "site"
    if not (site / "site.json").exists():
        simulate_site(site, size=512, days=17, fine_every=16, cloud_dates=(), seed=0)
    catalog = site / "catalog.json"
    return Prepared(
        cube=_ingest(catalog, work / "cube.zarr", ("fine", "coarse")),
        truth=_ingest(catalog, work / "truth.zarr", ("truth",)),
        dates=["2024-05-05", "2024-05-09", "2024-05-13"],
        runs=[
            *_methods_two_pairs(),
            Run("fsdaf (ISODATA)", "fsdaf", 1, {"mode": "seamless"}),
            Run("fitfc", "fitfc", 1),
            Run("nochange", "nochange", 1),
            Run("coarse-residual", "coarse-residual", 1),
        ],
    )


DATASETS: dict[str, Callable[[Path], Prepared]] = {
    "kranj_ts": prepare_kranj,
    "ifsdaf_ndvi_ts": prepare_ifsdaf,
    "fsdaf_lgc_sim": prepare_lgc,
    "simulated": prepare_simulated,
}


def run_dataset(name: str, out: Path, methods: set[str] | None) -> list[str]:
    """Ingest, fuse, evaluate and compare one data set; return its printed lines."""
    work = out / name
    for folder in ("fused", "reports"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    prepared = DATASETS[name](work)
    lines = [f"## {name}: truth {', '.join(prepared.dates)} (prepared in "]
    lines[0] += f"{time.perf_counter() - start:.1f} s)"
    reports: dict[str, Path] = {}
    runtimes: dict[str, float] = {}
    skipped = dict(prepared.skipped)
    for run in prepared.runs:
        if methods and run.method not in methods:
            continue
        slug = re.sub(r"[^a-z0-9]+", "_", run.label).strip("_")
        fused = work / "fused" / f"{slug}.zarr"
        start = time.perf_counter()
        try:
            fuse(
                prepared.cube,
                fused,
                method=run.method,
                dates=prepared.dates,
                pairs=run.pairs,
                params=run.params,
                tile=512,
                local_threads=2,
                overwrite=True,
                **prepared.fuse_options,
            )
        except (ConfigError, InputError) as exc:
            skipped[run.label] = f"cannot run: {exc}"
            continue
        runtimes[run.label] = time.perf_counter() - start
        report = evaluate(
            fused,
            prepared.truth,
            work / "reports" / slug,
            dates=prepared.dates,
            resolution_ratio=prepared.resolution_ratio,
            max_pictures=1,
            overwrite=True,
        )
        reports[run.label] = report.out_dir
    if len(reports) >= 2:
        compare(list(reports.values()), work / "compare", labels=list(reports), overwrite=True)
    lines += _table(reports, runtimes)
    lines += [f"- {label}: {why}" for label, why in skipped.items()]
    lines.append(f"compare: {work / 'compare' / 'compare.html'}")
    return lines


def _fmt(value: Any, digits: str = ".4g") -> str:
    return "–" if value is None else format(value, digits)


def _table(reports: dict[str, Path], runtimes: dict[str, float]) -> list[str]:
    """Method x band rows: RMSE, r, SSIM, count, coverage, runtime (mean over dates)."""
    import json

    header = "| method | band | RMSE | r | SSIM | n | coverage | fuse s |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for label, folder in reports.items():
        data = json.loads((folder / "metrics.json").read_text())
        for row in (r for r in data["per_band"] if r["date"] == "mean"):
            coverage = None if row["coverage"] is None else 100 * row["coverage"]
            lines.append(
                f"| {label} | {row['band']} | {_fmt(row['rmse'])} | {_fmt(row['r'], '.4f')} | "
                f"{_fmt(row['ssim'], '.4f')} | {row['count']:,} | {_fmt(coverage, '.2f')} % | "
                f"{runtimes[label]:.1f} |"
            )
        ergas = next(r for r in data["per_date"] if r["date"] == "mean")
        lines.append(
            f"| {label} | all | SAM {_fmt(ergas['sam'])}° | ERGAS {_fmt(ergas['ergas'])} | | | | |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--methods", nargs="+", help="method names to run (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "bench_accuracy")
    args = parser.parse_args(argv)
    if not SHARED.is_dir() and set(args.datasets) - {"simulated"}:
        sys.exit(f"shared data not found at {SHARED}: run with --datasets simulated")
    start = time.perf_counter()
    for name in args.datasets:
        for line in run_dataset(name, args.out, set(args.methods or ())):
            print(line, flush=True)
        print(flush=True)
    print(f"total {time.perf_counter() - start:.0f} s; reports under {args.out}")


if __name__ == "__main__":
    main()
