"""The ``stfcube`` command line: thin wrappers over the ``pipeline`` functions.

Each command lives in ``pipeline/commands/<name>.py`` and is registered in :data:`COMMANDS`, so
the CLI, the Prefect flows and the Python API share one code path.

Exit codes of :func:`main` (the console script):

- 0: success (also ``--help`` and ``--version``);
- 1: an internal error, i.e. a bug: one line on stderr naming the exception and the log file
  holding its full trace (``$STFCUBE_CACHE/logs``, by default ``~/.cache/stfcube/logs``; the
  cache, not the output folder, because an unwritable output is a common cause of failures);
- 2: a usage error (unknown command or option, missing argument, bad option value) or an
  expected failure (bad input, configuration or output, a file-system error such as a read-only
  file system, a denied permission or a full disk): one line on stderr, no traceback;
- 130: interrupted (Ctrl-C).

Messages are never wrapped when stderr is not a terminal, so a log keeps paths whole.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

from stfcube.pipeline.environment import apply_runtime_defaults, cache_dir

apply_runtime_defaults()  # before the commands import numba, dask, prefect, ...

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.text import Text  # noqa: E402

from stfcube.pipeline.commands import (  # noqa: E402
    demo,
    evaluate,
    export,
    flows,
    fuse,
    ingest,
    methods,
    simulate,
    train,
    verify,
)
from stfcube.pipeline.errors import StfcubeError, os_error_message  # noqa: E402

EXIT_INTERNAL_ERROR = 1
EXIT_FAILURE = 2
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="stfcube",
    help="Spatiotemporal fusion of fine (Landsat/Sentinel-2) and coarse (MODIS/VIIRS) imagery "
    "into analysis-ready Zarr cubes.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

#: Command name -> the function behind it (one line per command).
COMMANDS: dict[str, Callable[..., None]] = {
    "simulate": simulate.simulate_command,
    "ingest": ingest.ingest_command,
    "fuse": fuse.fuse_command,
    "evaluate": evaluate.evaluate_command,
    "compare": evaluate.compare_command,
    "export": export.export_command,
    "run": flows.run_command,
    "submit": flows.submit_command,
    "plan": flows.plan_command,
    "demo": demo.demo_command,
    "verify": verify.verify_command,
    "methods": methods.methods_command,
    "train": train.train_command,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)


def _print_version(show: bool) -> None:
    if show:
        from stfcube.pipeline import __version__

        typer.echo(f"stfcube {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Options of ``stfcube`` itself, before the command."""


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: run a command and return the process exit code.

    Every failure ends in one line on stderr (see the module docstring for the exit codes);
    only an internal error, a bug, leaves a full trace, in a log file the line names.

    Parameters
    ----------
    argv
        The arguments after the program name (default: ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv) or ["--help"]
    try:
        code = app(args=args, prog_name="stfcube", standalone_mode=False)
    except typer.TyperException as exc:  # usage errors of the click that typer bundles
        return _fail(_usage_message(exc), EXIT_FAILURE)
    except StfcubeError as exc:
        return _fail(str(exc), exc.exit_code)
    except OSError as exc:
        return _fail(os_error_message(exc), EXIT_FAILURE)
    except (KeyboardInterrupt, typer.Abort):
        code = EXIT_INTERRUPTED
    except Exception as exc:
        return _fail(_internal_error(exc, args), EXIT_INTERNAL_ERROR)
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into this exit code
        return _fail("interrupted", EXIT_INTERRUPTED)
    return code if isinstance(code, int) else 0


def _fail(message: str, code: int) -> int:
    """Print ``error: message`` on stderr, unwrapped, and return ``code``."""
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    console.print(Text.assemble(("error: ", "bold red"), message))
    return code


def _usage_message(exc: typer.TyperException) -> str:
    """The usage error's own message plus where to read the command's usage."""
    context = getattr(exc, "ctx", None)
    command = context.command_path if context is not None else "stfcube"
    return f"{_one_line(exc.format_message())} (see '{command} --help')"


def _internal_error(exc: Exception, args: Sequence[str]) -> str:
    """The one line reporting an unexpected exception; its trace goes to a log file."""
    summary = f"internal error: {type(exc).__name__}: {_one_line(str(exc))}"
    log = write_crash_log(exc, args)
    if log is None:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
        return f"{summary}; full trace above (no log folder was writable)"
    return f"{summary}; full trace in {log}"


def write_crash_log(exc: BaseException, args: Sequence[str]) -> Path | None:
    """Write the command, the versions and the trace of ``exc`` to a new log file.

    The file is ``stfcube-<UTC time>-<pid>.log`` under ``cache_dir()/logs``, or under the
    system's temporary folder when the cache is not writable.

    Returns
    -------
    pathlib.Path or None
        The log file; ``None`` when neither folder could be written.
    """
    import datetime
    import os
    import platform
    import shlex
    import tempfile
    import traceback

    from stfcube.pipeline import __version__

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"stfcube-{stamp}-{os.getpid()}.log"
    text = (
        f"command: stfcube {shlex.join(args)}\n"
        f"stfcube {__version__}, Python {platform.python_version()} on {platform.platform()}\n\n"
        + "".join(traceback.format_exception(exc))
    )
    for folder in (cache_dir() / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8")
        except OSError:
            continue
        return folder / name
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
