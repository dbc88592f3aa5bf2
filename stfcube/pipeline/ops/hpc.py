"""Batch-scheduler (Slurm, PBS) worker jobs for stfcube, rendered from dask-jobqueue configs.

A deploy config (``deploy/hpc/*.yaml``) has the shape of dask-jobqueue's ``jobqueue.yaml``: one
``jobqueue.<system>`` section (``slurm`` or ``pbs``) holding the job resources, the worker
command and the environment activation, plus an optional ``distributed`` section (worker memory
thresholds and the like) that is exported to the workers as ``DASK_*`` environment variables.
A config whose ``worker-command`` is :data:`CUDA_WORKER_MODULE` is a GPU profile: its jobs start
``dask-cuda-worker`` (one worker per GPU) instead of ``dask worker``.

The same config serves two paths that must not drift apart:

- :func:`render_job_script` / :func:`submit_job_script` (``stfcube submit``): worker jobs that
  join a scheduler started by the user (``dask scheduler`` beside ``stfcube run``);
- :func:`hpc_cluster`: a dask-jobqueue cluster that the flows' task runner starts and scales.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dask
import yaml
from dask_jobqueue import PBSCluster, SLURMCluster
from dask_jobqueue.core import Job, JobQueueCluster
from dask_jobqueue.pbs import PBSJob
from dask_jobqueue.slurm import SLURMJob

from stfcube.pipeline.errors import ConfigError, SchedulerError

System = Literal["slurm", "pbs"]

#: ``worker-command`` of GPU profiles: dask-cuda's worker entry point.
CUDA_WORKER_MODULE = "dask_cuda.cli"

#: The command each system uses to submit a batch script, and the job id in its reply.
SUBMIT_COMMANDS: dict[str, str] = {"slurm": "sbatch", "pbs": "qsub"}
_JOB_ID_PATTERNS: dict[str, re.Pattern[str]] = {
    "slurm": re.compile(r"Submitted batch job (\d+)"),
    "pbs": re.compile(r"^\s*(\d+(?:\[\])?(?:\.[\w.-]+)?)\s*$", re.MULTILINE),
}
#: Worker names unique per batch job (expanded by the job's shell).
_WORKER_NAMES: dict[str, str] = {"slurm": "stfcube-${SLURM_JOB_ID}", "pbs": "stfcube-${PBS_JOBID}"}
#: Keys dask-jobqueue still reads but has deprecated; configs must use the new names.
_DEPRECATED_KEYS = {
    "extra": "worker-extra-args",
    "env-extra": "job-script-prologue",
    "job-extra": "job-extra-directives",
    "header-skip": "job-directives-skip",
}
#: Cluster-level keys that are not job keyword arguments.
_CLUSTER_KEYS = {"scheduler-options"}


class _CudaWorkerJob:
    """Mixin: replace ``python -m dask_cuda.cli`` by the ``dask-cuda-worker`` executable."""

    _command_template: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._command_template = cuda_worker_command(self._command_template)


class CUDASLURMJob(_CudaWorkerJob, SLURMJob):
    """A Slurm job that starts ``dask-cuda-worker`` (one dask worker per visible GPU)."""


class CUDAPBSJob(_CudaWorkerJob, PBSJob):
    """A PBS job that starts ``dask-cuda-worker`` (one dask worker per visible GPU)."""


class CUDASLURMCluster(SLURMCluster):
    """``SLURMCluster`` whose jobs start ``dask-cuda-worker``."""

    job_cls = CUDASLURMJob


class CUDAPBSCluster(PBSCluster):
    """``PBSCluster`` whose jobs start ``dask-cuda-worker``."""

    job_cls = CUDAPBSJob


_JOB_CLASSES: dict[tuple[str, bool], type[Job]] = {
    ("slurm", False): SLURMJob,
    ("slurm", True): CUDASLURMJob,
    ("pbs", False): PBSJob,
    ("pbs", True): CUDAPBSJob,
}
_CLUSTER_CLASSES: dict[tuple[str, bool], type[JobQueueCluster]] = {
    ("slurm", False): SLURMCluster,
    ("slurm", True): CUDASLURMCluster,
    ("pbs", False): PBSCluster,
    ("pbs", True): CUDAPBSCluster,
}


@dataclass(frozen=True)
class HPCConfig:
    """A parsed deploy config for one batch system.

    Attributes
    ----------
    path
        The YAML file it was read from (named in errors).
    system
        ``"slurm"`` or ``"pbs"``.
    gpu
        True for GPU profiles (``worker-command: dask_cuda.cli``).
    job_kwargs
        Keyword arguments for the dask-jobqueue job and cluster classes.
    scheduler_options
        ``scheduler-options`` of the config (used only when the cluster starts its scheduler).
    """

    path: Path
    system: System
    gpu: bool
    job_kwargs: dict[str, Any]
    scheduler_options: dict[str, Any]

    @property
    def job_class(self) -> type[Job]:
        """The dask-jobqueue job class that renders this config's batch script."""
        return _JOB_CLASSES[self.system, self.gpu]

    @property
    def cluster_class(self) -> type[JobQueueCluster]:
        """The dask-jobqueue cluster class that submits this config's jobs itself."""
        return _CLUSTER_CLASSES[self.system, self.gpu]


def cuda_worker_command(command: str) -> str:
    """Turn a rendered ``PYTHON -m dask_cuda.cli ARGS`` into ``dask-cuda-worker ARGS``.

    The executable is taken from the same directory as ``PYTHON`` (the job's environment), or
    from ``PATH`` when ``PYTHON`` is a bare name.

    Parameters
    ----------
    command
        The worker command line dask-jobqueue rendered.

    Returns
    -------
    str
        The same arguments behind ``dask-cuda-worker``.
    """
    python, marker, arguments = command.partition(f" -m {CUDA_WORKER_MODULE} ")
    if not marker:
        raise ConfigError(f"GPU worker command does not run {CUDA_WORKER_MODULE}: {command!r}")
    executable = Path(python).with_name("dask-cuda-worker") if "/" in python else "dask-cuda-worker"
    return f"{executable} {arguments}"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such HPC config file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'jobqueue' section")
    return data


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping to ``{"a.b.c": leaf}``."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def dask_environment_exports(distributed: dict[str, Any]) -> list[str]:
    """``export DASK_...=value`` lines that carry a ``distributed`` config section to workers.

    Parameters
    ----------
    distributed
        The nested ``distributed`` mapping of a deploy config (e.g. ``worker.memory.target``).

    Returns
    -------
    list of str
        Shell lines, one per leaf, in dask's environment-variable naming
        (``DASK_DISTRIBUTED__WORKER__MEMORY__TARGET=0.6``).
    """
    lines = []
    for dotted, value in _flatten(distributed).items():
        name = "DASK_DISTRIBUTED__" + "__".join(
            p.upper().replace("-", "_") for p in dotted.split(".")
        )
        text = str(value).lower() if isinstance(value, bool) else str(value)
        lines.append(f"export {name}={text}")
    return lines


def load_hpc_config(path: str | Path, system: System | None = None) -> HPCConfig:
    """Read and check a ``deploy/hpc/*.yaml`` config.

    Parameters
    ----------
    path
        The YAML file (dask-jobqueue ``jobqueue.yaml`` shape).
    system
        The batch system the caller expects (``--slurm``/``--pbs``); None accepts either.

    Returns
    -------
    HPCConfig

    Raises
    ------
    ConfigError
        Missing file, not one ``jobqueue`` system section, unknown or deprecated keys, no
        ``cores``/``memory``, or a system other than ``system``.
    """
    path = Path(path)
    data = _read_yaml(path)
    unknown_top = set(data) - {"jobqueue", "distributed"}
    if unknown_top:
        raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown_top)}")
    sections = data.get("jobqueue") or {}
    if not isinstance(sections, dict) or len(sections) != 1:
        raise ConfigError(f"{path}: 'jobqueue' must hold exactly one of {sorted(SUBMIT_COMMANDS)}")
    ((found, section),) = sections.items()
    if found not in SUBMIT_COMMANDS:
        raise ConfigError(f"{path}: batch system {found!r} is not one of {sorted(SUBMIT_COMMANDS)}")
    if system is not None and found != system:
        raise ConfigError(f"{path}: this is a {found} config, but --{system} was asked for")
    section = dict(section or {})
    allowed = set(dask.config.get(f"jobqueue.{found}"))
    unknown = set(section) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown jobqueue.{found} keys {sorted(unknown)}")
    deprecated = sorted(set(section) & set(_DEPRECATED_KEYS))
    if deprecated:
        renames = ", ".join(f"{k} -> {_DEPRECATED_KEYS[k]}" for k in deprecated)
        raise ConfigError(f"{path}: deprecated jobqueue keys, rename them: {renames}")
    missing = [key for key in ("cores", "memory") if section.get(key) is None]
    if missing:
        raise ConfigError(f"{path}: jobqueue.{found} needs {' and '.join(missing)}")
    scheduler_options = dict(section.pop("scheduler-options", None) or {})
    kwargs = {
        ("job_name" if key == "name" else key.replace("-", "_")): value
        for key, value in section.items()
        if key not in _CLUSTER_KEYS and value is not None
    }
    exports = dask_environment_exports(data.get("distributed") or {})
    kwargs["job_script_prologue"] = [*exports, *kwargs.get("job_script_prologue", [])]
    gpu = section.get("worker-command") == CUDA_WORKER_MODULE
    return HPCConfig(path, found, gpu, kwargs, scheduler_options)


def render_job_script(config: HPCConfig, scheduler: str) -> str:
    """Render the batch script of one worker job that joins ``scheduler``.

    Parameters
    ----------
    config
        A loaded deploy config.
    scheduler
        Address of the running Dask scheduler, e.g. ``tcp://login01:8786``.

    Returns
    -------
    str
        The script: scheduler directives (resources, queue, walltime, log files), the
        environment set-up lines, then the worker command (``dask-cuda-worker`` for GPU profiles).
    """
    if not re.match(r"^[a-z]+://\S+$", scheduler):
        raise ConfigError(f"scheduler address {scheduler!r} is not of the form tcp://HOST:PORT")
    job = config.job_class(
        scheduler=scheduler, name=_WORKER_NAMES[config.system], **config.job_kwargs
    )
    return job.job_script()


def submit_job_script(
    script: str, system: System, *, jobs: int = 1, directory: str | Path | None = None
) -> list[str]:
    """Submit a batch script ``jobs`` times with ``sbatch``/``qsub``; return the job ids.

    Parameters
    ----------
    script
        The rendered batch script.
    system
        ``"slurm"`` or ``"pbs"``.
    jobs
        Number of identical worker jobs to submit.
    directory
        Where the script file is kept (default: a new temporary directory).

    Raises
    ------
    SchedulerError
        The submit command is not on ``PATH``, exits non-zero, or prints no job id.
    """
    command = SUBMIT_COMMANDS[system]
    executable = shutil.which(command)
    if executable is None:
        raise SchedulerError(
            f"{command} not found on PATH: run this on a {system} login node, "
            "or use --dry-run to print the job script"
        )
    folder = Path(directory) if directory is not None else Path(tempfile.mkdtemp("-stfcube"))
    folder.mkdir(parents=True, exist_ok=True)
    script_path = folder / f"stfcube-worker.{system}.sh"
    script_path.write_text(script)
    ids = []
    for _ in range(jobs):
        done = subprocess.run(
            [executable, str(script_path)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SchedulerError(
                f"{command} {script_path} failed (exit {done.returncode}): {done.stderr.strip()}"
            )
        match = _JOB_ID_PATTERNS[system].search(done.stdout)
        if match is None:
            raise SchedulerError(f"{command} printed no job id: {done.stdout.strip()!r}")
        ids.append(match.group(1))
    return ids


def hpc_cluster(config_path: str, **cluster_kwargs: Any) -> JobQueueCluster:
    """Start the dask-jobqueue cluster a deploy config describes (the task runner's factory).

    Parameters
    ----------
    config_path
        A ``deploy/hpc/*.yaml`` file.
    **cluster_kwargs
        Passed to the cluster class on top of the config; ``scheduler_options`` are merged
        into the config's.

    Returns
    -------
    JobQueueCluster
        ``SLURMCluster``/``PBSCluster`` (or their dask-cuda variants) with no jobs yet.
    """
    config = load_hpc_config(config_path)
    options = {**config.scheduler_options, **cluster_kwargs.pop("scheduler_options", {})}
    return config.cluster_class(scheduler_options=options, **config.job_kwargs, **cluster_kwargs)
