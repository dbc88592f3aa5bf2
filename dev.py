#!/usr/bin/env python3
"""Set-up and entry points for stfcube development: ``python3 dev.py demo|test|lint|bench NAME``.

``lint`` runs ``ruff check``, ``ruff format --check`` and ``mypy`` (the type check); CI runs it
before the tests.

Every command first makes sure that ``.venv`` exists and matches ``requirements.lock`` and
``requirements-learned.lock`` (the ``learned`` extra: PyTorch's CPU wheel), creating it with the
standard library ``venv`` and installing the pinned packages with ``uv``, so a fresh machine needs
nothing but Python 3.11.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
LEARNED_LOCK = ROOT / "requirements-learned.lock"
STAMP = VENV / ".stfcube-lock-sha256"
UV_VERSION = "0.13.9"


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _offline_environment() -> dict[str, str]:
    """This process's environment plus stfcube's runtime defaults, caches under ``.cache/``."""
    sys.path.insert(0, str(ROOT))
    from stfcube.pipeline.environment import runtime_defaults  # standard library only

    env = dict(os.environ)
    for key, value in {**runtime_defaults(ROOT / ".cache"), "PYTHONUNBUFFERED": "1"}.items():
        env.setdefault(key, value)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(VENV)
    return env


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def ensure_venv() -> dict[str, str]:
    """Create or refresh ``.venv`` from ``requirements.lock``; return the run environment."""
    locks = LOCK.read_bytes() + LEARNED_LOCK.read_bytes()
    wanted = hashlib.sha256(locks + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not (_venv_python().exists() and STAMP.exists() and STAMP.read_text() == wanted):
        if not _venv_python().exists():
            _run([sys.executable, "-m", "venv", str(VENV)])
        py = str(_venv_python())
        pip = [py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run([*pip, f"uv=={UV_VERSION}"])
        uv = str(VENV / "bin" / "uv")
        _run([uv, "pip", "install", "--python", py, "-r", str(LOCK), "-r", str(LEARNED_LOCK)])
        _run([uv, "pip", "install", "--python", py, "--no-deps", "-e", str(ROOT)])
        STAMP.write_text(wanted)
    return _offline_environment()


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        print("commands: demo [OUT_DIR] | test [PYTEST_ARGS...] | lint | bench NAME [ARGS...]")
        return 0
    command, rest = argv[0], argv[1:]
    env = ensure_venv()
    py = str(_venv_python())
    if command == "demo":
        cmd = [str(VENV / "bin" / "stfcube"), "demo", *(rest or ["demo-output"])]
    elif command == "test":
        cmd = [py, "-m", "pytest", *(rest or ["-m", "not gpu"])]
    elif command == "lint":
        checks = [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]]
        for check in checks:
            code = subprocess.run([str(VENV / "bin" / check[0]), *check[1:]], cwd=ROOT, env=env)
            if code.returncode:
                return code.returncode
        return 0
    elif command == "bench":
        if not rest:
            print("usage: python3 dev.py bench NAME [ARGS...]  (runs benchmarks/bench_NAME.py)")
            return 2
        cmd = [py, str(ROOT / "benchmarks" / f"bench_{rest[0]}.py"), *rest[1:]]
    else:
        print(f"unknown command {command!r}; try: python3 dev.py --help", file=sys.stderr)
        return 2
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
