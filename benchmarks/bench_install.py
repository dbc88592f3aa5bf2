"""``pip install .`` into a clean virtual environment, then the demo from the installed package.

Usage::

    python3 dev.py bench install [--extras learned] [--keep]

Makes a new virtual environment with the system's Python (no ``stfcube`` source on its path),
runs ``pip install CHECKOUT`` in it with the pins of ``requirements.lock`` as constraints (the
package index must be reachable, as for any ``pip install``), lists the import packages the
installed distribution put into ``site-packages`` (from its ``RECORD``: it must be ``stfcube``
alone), then runs ``stfcube demo`` from that environment in an empty folder and checks that the
demo's report was written. Prints the time of each step; exit status 1 when a step fails or the
distribution installs anything but ``stfcube``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(step: str, cmd: list[str], cwd: Path) -> float:
    """Run ``cmd`` in ``cwd``; return its wall time, raising with its output when it fails."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{step} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return seconds


def installed_packages(venv: Path) -> set[str]:
    """Top-level names the ``stfcube`` distribution wrote into the environment's site-packages."""
    (record,) = venv.glob("lib/python*/site-packages/stfcube-*.dist-info/RECORD")
    names = {line.split(",", 1)[0].split("/", 1)[0] for line in record.read_text().splitlines()}
    return {name for name in names if not name.endswith(".dist-info") and not name.startswith("..")}


def main(argv: list[str] | None = None) -> int:
    """Install, list, run the demo, print the times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="", help="extras to install, e.g. 'learned'")
    parser.add_argument("--keep", action="store_true", help="keep the environment and demo")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-install-"))
    venv, demo = work / "venv", work / "demo"
    target = f"{ROOT}[{args.extras}]" if args.extras else str(ROOT)
    try:
        times = {"venv": timed("venv", [sys.executable, "-m", "venv", str(venv)], work)}
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        times["pip install ."] = timed(
            "pip install", [*pip, "-c", str(ROOT / "requirements.lock"), target], work
        )
        packages = installed_packages(venv)
        demo.mkdir()
        times["stfcube demo"] = timed("demo", [str(venv / "bin" / "stfcube"), "demo", "out"], demo)
        report = demo / "out" / "report"
        ok = packages == {"stfcube"} and any(report.glob("**/metrics.json"))
        for step, seconds in times.items():
            print(f"{step:<14} {seconds:8.1f} s")
        print(f"import packages installed: {', '.join(sorted(packages))}")
        print(f"demo report: {'written' if ok else 'MISSING'} under {report}")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
