"""The demo's pipeline stage by stage: wall time and how busy each stage keeps the cores.

Usage::

    python3 dev.py bench pipeline [--size 512] [--days 24] [--tile 256]

Simulates the demo's site (untimed by the flow; its time is printed), runs the demo's region
through ``update_flow`` (Prefect, a local thread cluster: ingest, fuse, evaluate) and prints the
stage table of its report, then fuses the same cube again through the ``fuse`` function that
``stfcube fuse`` calls (its own local cluster, the CLI's default tile) into a new store and prints
its wall time and core use. Core use is the process's CPU time (user + system, all threads) over
wall time x cores: 100 % means every core busy for the whole stage (goal for fuse: >= 90 %).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from stfcube.flows.update import StageTime, run_update, stage_clock
from stfcube.pipeline.commands.demo import demo_region
from stfcube.pipeline.engine.run import fuse
from stfcube.pipeline.simulate.site import simulate_site


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the stage table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--days", type=int, default=24)
    parser.add_argument("--tile", type=int, default=256, help="the demo's tile")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    times: dict[str, StageTime] = {}
    try:
        with stage_clock(times, "simulate"):
            simulate_site(root / "site", size=args.size, days=args.days)
        started = time.perf_counter()
        report = run_update(demo_region(root, args.tile))
        flow_wall = time.perf_counter() - started
        times.update(report.stage_times)
        with stage_clock(times, "stfcube fuse (CLI path, tile 512)"):
            fused = fuse(root / "cube.zarr", root / "fused-cli.zarr")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"site {args.size}x{args.size} px, {args.days} days, demo tile {args.tile}")
    print(f"{'stage':<36}{'wall':>9}{'cores busy':>12}")
    for name, stage in times.items():
        print(f"{name:<36}{stage.wall_s:8.1f}s{stage.cpu_busy:11.0%}")
    staged = sum(report.stage_times[s].wall_s for s in ("ingest", "fuse", "evaluate"))
    print(f"{'update flow, start-up and hand-over':<36}{flow_wall - staged:8.1f}s")
    print(f"fuse (CLI path) computed {len(fused.dates_computed)} dates")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
