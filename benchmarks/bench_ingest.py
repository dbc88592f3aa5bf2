"""Benchmark ``stfcube ingest`` at scale: wall time and peak memory of a large scene stack.

Usage::

    python3 dev.py bench ingest [--size 10000] [--days 2] [--chunk 512]
    python3 dev.py bench ingest --size 512 --days 24 --chunk 256   # the demo's site: overheads

Simulates a site first in a child process (COGs + STAC catalog; not timed, and not in this
process's memory figures), then ingests its catalog into a new
Zarr cube and reports the ingest's wall time, throughput and peak RSS (sampled, and
``getrusage``) against the 2 GiB budget: ingest streams scenes chunk by chunk and never holds
an image, so the peak must not grow with the extent. A second, no-op ingest of the same
catalog is timed too (the append path's validation and skip). Exit status 1 when the budget is
exceeded.

The bare baseline, measured in the same run: read every source raster the cube records
(``fine_sources``/``coarse_sources``) whole with rasterio, and write the cube's arrays (same
shapes, chunks and codecs, values read back from the cube untimed, one (date, band) slice at a
time) with zarr alone. ``ingest / bare`` is the overhead of stfcube over disk speed (goal: <= 3).
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import rasterio
import zarr
from bench_simulate import START, PeakRss, report_memory

from stfcube.pipeline.ingest.scenes import ingest
from stfcube.pipeline.simulate.site import simulate_site


def bare_copy(cube: Path, out: Path) -> float:
    """Seconds to read the cube's source rasters with rasterio and write its arrays with zarr."""
    source = zarr.open_group(cube, mode="r")
    paths = [p for key in ("fine_sources", "coarse_sources") for p in source.attrs[key].values()]
    elapsed = 0.0
    start = time.perf_counter()
    for path in paths:
        with rasterio.open(path) as raster:
            raster.read()
    elapsed += time.perf_counter() - start
    target = zarr.open_group(out, mode="w", zarr_format=3)
    for name, array in source.arrays():
        copy = target.create_array(
            name,
            shape=array.shape,
            chunks=array.chunks,
            dtype=array.dtype,
            compressors=array.compressors,
            fill_value=array.fill_value,
        )
        for index in np.ndindex(*array.shape[:-2]):
            values = array[index]  # read back untimed
            start = time.perf_counter()
            copy[index] = values
            elapsed += time.perf_counter() - start
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 when the peak memory is within budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=512)
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        site = scratch / "site"
        print(f"simulating a {args.size}^2 site, {args.days} days (not timed) ...", flush=True)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            pool.submit(
                simulate_site,
                site,
                size=args.size,
                days=args.days,
                start_date=START,
                cloud_dates=[START + timedelta(days=args.days - 1)],
            ).result()
        source_bytes = sum(p.stat().st_size for p in site.rglob("*.tif"))
        cube = scratch / "cube.zarr"
        start = time.perf_counter()
        with PeakRss() as rss:
            report = ingest(site, cube, chunk=args.chunk)
        wall = time.perf_counter() - start
        start = time.perf_counter()
        again = ingest(site, cube, chunk=args.chunk)
        noop = time.perf_counter() - start
        bare = bare_copy(cube, scratch / "bare.zarr")
        cube_bytes = sum(p.stat().st_size for p in cube.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    pixels = args.size**2 * report.n_times * len(report.bands)
    print(
        f"scenes           {len(report.written)} written, {report.n_times} dates, "
        f"{len(report.bands)} bands, coarse_native={report.coarse_native}"
    )
    print(f"sources          {source_bytes / 2**30:9.2f} GiB of COGs")
    print(f"cube             {cube_bytes / 2**30:9.2f} GiB of Zarr (chunk {args.chunk})")
    print(f"ingest wall time {wall:9.1f} s  ({pixels / wall / 1e6:.1f} Mpixel-bands/s)")
    print(f"no-op re-ingest  {noop:9.1f} s  ({len(again.skipped)} scenes skipped)")
    print(f"bare baseline    {bare:9.1f} s  (rasterio reads + zarr writes of the same bytes)")
    print(f"ingest / bare    {wall / bare:9.2f}x  (goal <= 3)")
    return report_memory(rss)


if __name__ == "__main__":
    sys.exit(main())
