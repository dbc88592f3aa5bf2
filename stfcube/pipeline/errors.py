"""Errors that stfcube reports to users: one clear message, naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class StfcubeError(Exception):
    """Base class of every user-facing stfcube error (the CLI prints it and exits non-zero)."""

    exit_code = 2


class InputError(StfcubeError):
    """Bad input data: a file that is missing, unreadable, inconsistent or of the wrong shape."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def __reduce__(self) -> tuple[type[InputError], tuple[str | None, str]]:
        """Pickle with both arguments, so an error raised on a dask worker arrives intact."""
        return (type(self), (self.path, self.problem))


class ConfigError(StfcubeError):
    """Bad parameters or configuration (unknown method, dates outside the cube, ...)."""


class OutputError(StfcubeError):
    """The output cannot be written as asked (exists with other parameters, is a file, ...)."""


class SchedulerError(StfcubeError):
    """A batch scheduler (Slurm ``sbatch``, PBS ``qsub``) is missing or refused a job."""


def os_error_message(exc: OSError) -> str:
    """One line naming the path(s) of a failed file-system operation and the system's reason.

    ``OSError: [Errno 30] Read-only file system: 'out.zarr/fused/zarr.json'`` becomes
    ``out.zarr/fused/zarr.json: Read-only file system``; a rename names both paths.
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return reason
    paths = str(exc.filename)
    if exc.filename2 is not None:
        paths += f" -> {exc.filename2}"
    return f"{paths}: {reason}"
