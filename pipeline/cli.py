"""The ``stfcube`` command line: thin wrappers over the ``pipeline`` functions.

Each command lives in ``pipeline/commands/<name>.py`` and is registered here, so the CLI, the
Prefect flows and the Python API share one code path.
"""

from __future__ import annotations

import sys

from pipeline.environment import apply_runtime_defaults

apply_runtime_defaults()  # before the commands import numba, dask, prefect, ...

import typer  # noqa: E402
from rich.console import Console  # noqa: E402

from pipeline.errors import StfcubeError  # noqa: E402

app = typer.Typer(
    name="stfcube",
    help="Spatiotemporal fusion of fine (Landsat/Sentinel-2) and coarse (MODIS/VIIRS) imagery "
    "into analysis-ready Zarr cubes.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

# Command registration: one line per command module.
from pipeline.commands import demo as _demo  # noqa: E402
from pipeline.commands import evaluate as _evaluate  # noqa: E402
from pipeline.commands import flows as _flows  # noqa: E402
from pipeline.commands import fuse as _fuse  # noqa: E402
from pipeline.commands import ingest as _ingest  # noqa: E402
from pipeline.commands import simulate as _simulate  # noqa: E402

app.command("simulate")(_simulate.simulate_command)
app.command("fuse")(_fuse.fuse_command)
app.command("ingest")(_ingest.ingest_command)
app.command("evaluate")(_evaluate.evaluate_command)
app.command("compare")(_evaluate.compare_command)
app.command("run")(_flows.run_command)
app.command("submit")(_flows.submit_command)
app.command("plan")(_flows.plan_command)
app.command("demo")(_demo.demo_command)


def main() -> None:
    """Console-script entry point: run the app, turning ``StfcubeError`` into a clear message."""
    err = Console(stderr=True)
    try:
        app(standalone_mode=False)
    except StfcubeError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except (typer.Exit, SystemExit) as exc:  # --help, explicit exits
        code = getattr(exc, "exit_code", None) or getattr(exc, "code", 0) or 0
        sys.exit(code)
    except Exception as exc:  # click usage errors carry their own formatting
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
