"""Benchmark ``stfcube export`` of a large date: wall time and peak memory.

Usage::

    python3 dev.py bench export [--size 10000] [--bands 4] [--stac] [--out DIR] [--keep]

Writes a synthetic fused store (one date, ``--bands`` bands of ``--size``² float32 pixels, 512-px
chunks, a no-data corner) chunk by chunk, then exports it to a COG (and with ``--stac`` its STAC
collection) while sampling the process RSS. Reports the store write time, the export time, the
COG size and the peak RSS against the 2 GiB budget; exit status 1 when the budget is exceeded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from affine import Affine
from bench_simulate import PeakRss, report_memory
from rasterio.crs import CRS

from stfcube.pipeline.export import export_cog
from stfcube.pipeline.store.cube import COMMON_UNITS, write_grid
from stfcube.pipeline.store.fused import FUSED_SCHEMA

DATE = "2024-05-03"
CHUNK = 512


def write_store(path: Path, size: int, n_bands: int) -> None:
    """A complete one-date fused store of ``size``² pixels, written one chunk at a time."""
    bands = [f"b{i + 1}" for i in range(n_bands)]
    tiles = -(-size // CHUNK)
    template = xr.Dataset(
        {
            "fused": (
                ("time", "band", "y", "x"),
                da.full(
                    (1, n_bands, size, size), np.nan, dtype=np.float32, chunks=(1, 1, CHUNK, CHUNK)
                ),
                {"long_name": "fused fine-resolution prediction", "units": COMMON_UNITS},
            ),
            "tile_done": (("time", "tile_y", "tile_x"), da.ones((1, tiles, tiles), dtype=np.uint8)),
        },
        coords={
            "time": [np.datetime64(DATE, "ns")],
            "band": np.array(bands, dtype=object),
            "y": 4.5e6 - 30.0 * (np.arange(size) + 0.5),
            "x": 5e5 + 30.0 * (np.arange(size) + 0.5),
        },
        attrs={
            "stfcube_schema": FUSED_SCHEMA,
            "method": "starfm",
            "parameters": json.dumps({"max_search_distance": 1500.0}),
            "layers": "[]",
            "pairs_used": json.dumps({DATE: ["2024-05-01", "2024-05-09"]}),
            "input_revisions": "{}",
            "skipped_dates": "{}",
            "complete": True,
        },
    )
    template = write_grid(template, CRS.from_epsg(32633), Affine(30, 0, 5e5, 0, -30, 4.5e6))
    template.to_zarr(path, mode="w", compute=False, consolidated=False)
    zarr.open_array(str(path / "tile_done"), mode="r+")[...] = 1
    fused = zarr.open_array(str(path / "fused"), mode="r+")
    rng = np.random.default_rng(0)
    for b in range(n_bands):
        for row in range(0, size, CHUNK):
            for col in range(0, size, CHUNK):
                rows, cols = min(CHUNK, size - row), min(CHUNK, size - col)
                yy, xx = np.mgrid[row : row + rows, col : col + cols]
                block = 800 + 600 * ((yy // 170 + xx // 230) % 5) + 150 * b
                block = (block + rng.normal(0, 30, block.shape)).astype(np.float32)
                block[(yy < size // 10) & (xx < size // 10)] = np.nan
                fused[0, b, row : row + rows, col : col + cols] = block


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when the peak RSS stays below 2 GiB."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--stac", action="store_true", help="also write the STAC collection")
    parser.add_argument("--out", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the store and the COG")
    args = parser.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="stfcube-bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    store, out = work / "fused.zarr", work / "export"
    try:
        start = time.perf_counter()
        write_store(store, args.size, args.bands)
        print(
            f"store            {args.size}² x {args.bands} bands written in "
            f"{time.perf_counter() - start:.1f} s"
        )
        start = time.perf_counter()
        with PeakRss() as rss:
            result = export_cog(store, out, stac=args.stac, overwrite=True)
        elapsed = time.perf_counter() - start
        size = result.cogs[DATE].stat().st_size
        print(f"export           {elapsed:9.1f} s  (COG {size / 2**20:.0f} MiB)")
        return report_memory(rss)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
