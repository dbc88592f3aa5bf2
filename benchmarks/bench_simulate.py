"""Benchmark ``stfcube simulate`` at scale: wall time and peak memory.

Usage::

    python3 dev.py bench simulate [--size 10000] [--days 2] [--out DIR] [--keep]

Writes a site into a temporary directory (or ``--out``), samples the process RSS in a thread
(psutil) and reports the wall time, the peak RSS (also ``getrusage`` max RSS) and whether the
peak stays below the 2 GiB budget. One fine date is cloudy so that the cloud path is measured.
Exit status 1 when the budget is exceeded.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import psutil

from stfcube.pipeline.simulate import simulate_site

BUDGET_BYTES = 2 * 1024**3
START = date(2024, 5, 1)


class PeakRss:
    """Sample the RSS of this process every ``interval`` seconds in a daemon thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._process = psutil.Process()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def report_memory(rss: PeakRss) -> int:
    """Print the sampled and ``getrusage`` peak RSS against the budget; 0 when within it."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(f"peak RSS sampled {rss.peak / 2**30:9.2f} GiB")
    print(f"peak RSS rusage  {maxrss / 2**30:9.2f} GiB")
    within = max(rss.peak, maxrss) < BUDGET_BYTES
    print(f"below 2 GiB      {'yes' if within else 'NO'}")
    return 0 if within else 1


def _progress(start: float) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        rss = psutil.Process().memory_info().rss / 2**20
        print(
            f"  rows {done:>6}/{total}  {time.perf_counter() - start:7.1f} s  RSS {rss:7.0f} MiB",
            flush=True,
        )

    return report


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 when the peak memory is within budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--fine-every", type=int, default=8)
    parser.add_argument("--coarse-ratio", type=int, default=16)
    parser.add_argument("--block-rows", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="site directory (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the site written in a temp dir")
    args = parser.parse_args(argv)

    scratch = None
    if args.out is None:
        scratch = Path(tempfile.mkdtemp(prefix="bench-simulate-"))
        out = scratch / "site"
    else:
        out = args.out
    cloudy = [START + timedelta(days=args.days - 1)]
    print(f"simulate --size {args.size} --days {args.days} -> {out}", flush=True)
    try:
        start = time.perf_counter()
        with PeakRss() as rss:
            summary = simulate_site(
                out,
                size=args.size,
                days=args.days,
                coarse_ratio=args.coarse_ratio,
                fine_every=args.fine_every,
                start_date=START,
                cloud_dates=cloudy,
                block_rows=args.block_rows,
                overwrite=args.out is not None,
                progress=_progress(start),
            )
        wall = time.perf_counter() - start
        written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        if scratch is not None and not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    pixels = args.size**2 * args.days
    files = len(summary.truth_paths) + len(summary.coarse_paths) + 2 * len(summary.fine_paths)
    print(f"wall time        {wall:9.1f} s  ({pixels / wall / 1e6:.2f} Mpixel-days/s)")
    print(f"written          {written / 2**30:9.2f} GiB in {files} COGs")
    return report_memory(rss)


if __name__ == "__main__":
    sys.exit(main())
