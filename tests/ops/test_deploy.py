"""Deployment configuration as tested data: prefect.yaml, HPC job scripts, runners, Dockerfile.

Nothing here needs a Prefect server, a batch scheduler or a cluster: deployments are checked with
``flow.to_deployment`` / ``validate_parameters`` offline, job scripts with dask-jobqueue's
``job_script()``, and submission with a fake ``sbatch`` on ``PATH``.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import stfcube.flows.ingest
from stfcube.flows.runners import local_cluster_kwargs, retry_options, task_runner
from stfcube.pipeline.cli import app
from stfcube.pipeline.errors import ConfigError, SchedulerError
from stfcube.pipeline.ops.hpc import (
    cuda_worker_command,
    dask_environment_exports,
    hpc_cluster,
    load_hpc_config,
    render_job_script,
    submit_job_script,
)
from stfcube.pipeline.ops.update import (
    RegionConfig,
    RetryPolicy,
    RunnerConfig,
    load_region_config,
    region_config_from_mapping,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEDULER = "tcp://10.1.2.3:8786"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dask-jobqueue creates the configs' relative log directory: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


# ------------------------------------------------------------------------------------ prefect


def _prefect_yaml() -> dict:
    return yaml.safe_load((DEPLOY / "prefect.yaml").read_text())


def _deployments() -> list[dict]:
    return _prefect_yaml()["deployments"]


def test_prefect_yaml_has_the_shape_prefect_deploy_reads() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(_prefect_yaml())
    names = [d.name for d in model.deployments]
    assert len(names) == len(set(names))
    scheduled = [d for d in model.deployments if d.schedules]
    assert {d.entrypoint for d in scheduled} == {"stfcube/flows/update.py:update_flow"}
    assert all(d.work_pool is not None and d.work_pool.name for d in model.deployments)


@pytest.mark.parametrize("deployment", _deployments(), ids=lambda d: d["name"])
def test_deployment_entrypoint_imports_and_parameters_validate(deployment: dict) -> None:
    from prefect.flows import load_flow_from_entrypoint

    flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
    parameters = deployment["parameters"]
    assert set(parameters) == set(flow.parameters.properties)  # matches the signature
    validated = flow.validate_parameters(parameters)
    region_file = ROOT / validated["region"]
    config = load_region_config(region_file)
    assert config.name
    cron = deployment["schedules"][0]["cron"] if deployment.get("schedules") else None
    runner_deployment = flow.to_deployment(
        name=deployment["name"], parameters=parameters, cron=cron
    )
    assert runner_deployment.parameters == parameters
    assert runner_deployment.entrypoint.endswith(deployment["entrypoint"].split("/")[-1])
    if cron is not None:
        assert runner_deployment.schedules[0].schedule.cron == cron


def test_flow_parameters_reject_a_bad_region() -> None:
    from prefect.exceptions import ParameterTypeError

    from stfcube.flows import update_flow

    with pytest.raises(ParameterTypeError):
        update_flow.validate_parameters({"region": {"name": "x", "source": 3}})
    validated = update_flow.validate_parameters(
        {"region": {"name": "x", "source": "s", "cube": "c.zarr", "fused": "f.zarr"}}
    )
    assert validated["region"].cube == Path("c.zarr")


def test_documented_region_settings_validate() -> None:
    """Settings that the deploy files tell users to put in a region config are accepted."""
    base = {"name": "x", "source": "s", "cube": "c.zarr", "fused": "f.zarr"}
    settings = [
        setting
        for path in sorted(DEPLOY.rglob("*.yaml"))
        for setting in re.findall(r"^#.*`(\w+): (\w+)`", path.read_text(), re.MULTILINE)
    ]
    assert ("device", "gpu") in settings
    for key, value in settings:
        region_config_from_mapping({**base, key: value})


def test_every_region_config_validates() -> None:
    for path in sorted((DEPLOY / "regions").glob("*.yaml")):
        config = load_region_config(path)
        if config.runner.hpc is not None:
            load_hpc_config(ROOT / config.runner.hpc)


def test_region_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nsource: s\ncube: c\nfused: f\ntile: -1\nrunner: {adress: a}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: .*tile.*runner\.adress"):
        load_region_config(path)


CATALOG_REGION = """
name: pc
source: https://planetarycomputer.microsoft.com/api/stac/v1
catalog:
  fine: [landsat-c2-l2]
  coarse: [modis-43A4-061]
  bbox: [149.05, -35.35, 149.17, -35.26]
  dates: 2024-09-01/2024-11-30
  resolution: 30
  bands: [red, nir]
cube: c.zarr
fused: f.zarr
"""


def test_catalog_region_reaches_the_ingest_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ingest stage submits the section's query; the task passes it to ``ingest``."""
    config = region_config_from_mapping(yaml.safe_load(CATALOG_REGION))
    task = stfcube.flows.ingest.ingest_task
    submitted: list[tuple] = []

    class Future:
        def __init__(self, args: tuple) -> None:
            submitted.append(args)

        def result(self) -> tuple:
            return submitted[-1]

    class Task:
        def with_options(self, **options: object) -> Task:
            return self

        def submit(self, *args: object) -> Future:
            return Future(args)

    monkeypatch.setattr(stfcube.flows.ingest, "ingest_task", Task())
    stfcube.flows.ingest.ingest_stage(config)
    ((source, cube, chunk, roles, query),) = submitted
    assert (source, cube, roles) == (config.source, Path("c.zarr"), ("fine", "coarse"))
    assert (query.fine, query.coarse) == (("landsat-c2-l2",), ("modis-43A4-061",))
    assert query.bbox == (149.05, -35.35, 149.17, -35.26)
    assert [d.date().isoformat() for d in query.dates] == ["2024-09-01", "2024-11-30"]
    assert (query.resolution, query.bands) == (30.0, ("red", "nir"))

    calls: list[dict] = []
    monkeypatch.setattr(stfcube.pipeline.ingest.scenes, "ingest", lambda *a, **kw: calls.append(kw))
    task.fn(source, cube, chunk, roles, query)
    assert calls == [{"chunk": chunk, "roles": roles, "catalog": query}]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"fine": [], "coarse": []}, "name at least one fine or coarse collection"),
        ({"bbox": [10, 0, 5, 1]}, "is not W<E, S<N"),
        ({"dates": "2024-11-30/2024-09-01"}, "ends before it starts"),
        ({"cloud": 10}, "catalog.cloud: Extra inputs are not permitted"),
    ],
)
def test_bad_catalog_section_is_refused(edit: dict, problem: str) -> None:
    data = yaml.safe_load(CATALOG_REGION)
    data["catalog"].update(edit)
    with pytest.raises(ConfigError, match=re.escape(problem)):
        region_config_from_mapping(data)


def test_region_without_catalog_has_none() -> None:
    assert RegionConfig(name="x", source="s", cube="c", fused="f").catalog is None


# -------------------------------------------------------------------------------- job scripts


def test_slurm_job_script() -> None:
    script = render_job_script(load_hpc_config(DEPLOY / "hpc" / "slurm.yaml", "slurm"), SCHEDULER)
    lines = script.splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    for directive in ("-p normal", "-A rs-fusion", "--cpus-per-task=32", "-t 04:00:00"):
        assert f"#SBATCH {directive}" in lines
    assert any(re.fullmatch(r"#SBATCH --mem=\d+G", line) for line in lines)
    activation = lines.index("source /opt/stfcube/.venv/bin/activate")
    worker = next(i for i, line in enumerate(lines) if "distributed.cli.dask_worker" in line)
    assert activation < worker
    command = lines[worker]
    assert command.startswith(
        f"/opt/stfcube/.venv/bin/python -m distributed.cli.dask_worker {SCHEDULER}"
    )
    assert "--nworkers 4" in command and "--nthreads 8" in command
    assert "--name stfcube-${SLURM_JOB_ID}" in command
    assert "export DASK_DISTRIBUTED__WORKER__MEMORY__TARGET=0.6" in lines


def test_pbs_job_script() -> None:
    script = render_job_script(load_hpc_config(DEPLOY / "hpc" / "pbs.yaml", "pbs"), SCHEDULER)
    lines = script.splitlines()
    for directive in ("-q workq", "-A rs-fusion", "-l select=1:ncpus=36:mem=180GB"):
        assert f"#PBS {directive}" in lines
    assert "#PBS -l walltime=04:00:00" in lines
    assert "source /opt/stfcube/.venv/bin/activate" in lines
    assert not any(line.startswith("#SBATCH") for line in lines)
    command = lines[-1]
    assert "-m distributed.cli.dask_worker" in command and "--nworkers 6" in command
    assert "--name stfcube-${PBS_JOBID}" in command


def test_gpu_job_script_starts_dask_cuda_workers() -> None:
    config = load_hpc_config(DEPLOY / "hpc" / "gpu-slurm.yaml", "slurm")
    assert config.gpu
    lines = render_job_script(config, SCHEDULER).splitlines()
    assert "#SBATCH --gres=gpu:1" in lines and "#SBATCH -p gpu" in lines
    assert "module load cuda/12" in lines
    command = lines[-1]
    assert command.startswith(f"/opt/stfcube/.venv/bin/dask-cuda-worker {SCHEDULER} ")
    assert "--resources GPU=1" in command
    assert "-m dask_cuda.cli" not in command and "--nworkers" not in command


def test_cuda_worker_command_needs_the_cuda_module() -> None:
    assert cuda_worker_command("python -m dask_cuda.cli tcp://a:1 --nthreads 2") == (
        "dask-cuda-worker tcp://a:1 --nthreads 2"
    )
    with pytest.raises(ConfigError, match=r"dask_cuda\.cli"):
        cuda_worker_command("python -m distributed.cli.dask_worker tcp://a:1")


def test_distributed_section_becomes_worker_environment() -> None:
    exports = dask_environment_exports(
        {"worker": {"memory": {"spill": 0.7}, "use-file-locking": True}}
    )
    assert exports == [
        "export DASK_DISTRIBUTED__WORKER__MEMORY__SPILL=0.7",
        "export DASK_DISTRIBUTED__WORKER__USE_FILE_LOCKING=true",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("jobqueue: {slurm: {cores: 4}}", "needs memory"),
        ("jobqueue: {slurm: {cores: 4, memory: 8GB, cpus: 2}}", r"unknown .*cpus"),
        ("jobqueue: {slurm: {cores: 4, memory: 8GB, env-extra: [a]}}", "env-extra -> job-script"),
        ("jobqueue: {sge: {cores: 4, memory: 8GB}}", "not one of"),
        ("jobqueue: {pbs: {cores: 4, memory: 8GB}}", "pbs config, but --slurm"),
        ("workers: 3", "unknown top-level"),
    ],
)
def test_hpc_config_errors(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_hpc_config(path, "slurm")


def test_bad_scheduler_address_is_refused() -> None:
    config = load_hpc_config(DEPLOY / "hpc" / "slurm.yaml")
    with pytest.raises(ConfigError, match="tcp://HOST:PORT"):
        render_job_script(config, "login01")


# --------------------------------------------------------------------------------- submission


def _fake_scheduler_command(folder: Path, name: str, reply: str) -> Path:
    """A fake sbatch/qsub that keeps the submitted script and prints ``reply``."""
    folder.mkdir(exist_ok=True)
    fake = folder / name
    fake.write_text(f'#!/bin/sh\ncp "$1" "{folder}/submitted-$$.sh"\necho "{reply}"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_submit_with_fake_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    _fake_scheduler_command(bin_dir, "sbatch", "Submitted batch job 4242")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    script = render_job_script(load_hpc_config(DEPLOY / "hpc" / "slurm.yaml"), SCHEDULER)
    assert submit_job_script(script, "slurm", jobs=2, directory=tmp_path / "jobs") == ["4242"] * 2
    submitted = sorted(bin_dir.glob("submitted-*.sh"))
    assert len(submitted) == 2 and submitted[0].read_text() == script


def test_submit_command_with_fake_qsub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    _fake_scheduler_command(bin_dir, "qsub", "1234.pbs01")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = CliRunner().invoke(
        app, ["submit", "--pbs", str(DEPLOY / "hpc" / "pbs.yaml"), "--scheduler", SCHEDULER]
    )
    assert result.exit_code == 0, result.output
    assert "1234.pbs01" in result.output


def test_submit_without_sbatch_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SchedulerError, match=r"sbatch not found on PATH.*--dry-run"):
        submit_job_script("#!/bin/sh\n", "slurm")


def test_submit_dry_run_prints_the_script() -> None:
    result = CliRunner().invoke(
        app, ["submit", "--slurm", str(DEPLOY / "hpc" / "gpu-slurm.yaml"), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("#!/usr/bin/env bash")
    assert "dask-cuda-worker tcp://SCHEDULER-HOST:8786" in result.output


def test_submit_needs_one_batch_system() -> None:
    result = CliRunner().invoke(app, ["submit", str(DEPLOY / "hpc" / "pbs.yaml"), "--dry-run"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)


# ------------------------------------------------------------------------------------ runners


def test_default_runner_is_a_thread_local_cluster() -> None:
    runner = task_runner()
    assert runner.cluster_kwargs == {"n_workers": 1, "processes": False, "dashboard_address": ":0"}
    assert (
        local_cluster_kwargs(RunnerConfig(n_workers=2, threads_per_worker=1))["threads_per_worker"]
        == 1
    )


def test_address_and_hpc_runners() -> None:
    assert task_runner(RunnerConfig(address=SCHEDULER)).address == SCHEDULER
    hpc = DEPLOY / "hpc" / "gpu-slurm.yaml"
    runner = task_runner(RunnerConfig(hpc=hpc, min_jobs=1, max_jobs=4))
    assert runner.resolved_cluster_class is hpc_cluster
    assert runner.adapt_kwargs == {"minimum_jobs": 1, "maximum_jobs": 4}
    with pytest.raises(ValueError, match="not both"):
        RunnerConfig(address=SCHEDULER, hpc=hpc)


def test_hpc_cluster_renders_the_same_workers_without_slurm() -> None:
    path = str(DEPLOY / "hpc" / "gpu-slurm.yaml")
    cluster = hpc_cluster(path, scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "dask-cuda-worker tcp://" in script and "--resources GPU=1" in script


def test_retry_options_back_off_exponentially() -> None:
    options = retry_options(RetryPolicy(retries=3, delay_seconds=5, jitter=0.1))
    assert options == {"retries": 3, "retry_delay_seconds": [5, 10, 20], "retry_jitter_factor": 0.1}


# ------------------------------------------------------------------------------------- docker


def test_dockerfile_copies_existing_paths_and_installs_the_lock() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("# syntax=") or text.lstrip().startswith(("FROM", "#"))
    for line in text.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert re.search(r"^USER \w+", text, re.MULTILINE)
    assert "requirements.lock" in text and "DO_NOT_TRACK=1" in text


def test_cli_starts_without_importing_the_heavy_stack() -> None:
    """``stfcube --help`` reads only the command signatures: the work modules load on use."""
    import subprocess
    import sys

    code = (
        "import sys, stfcube.pipeline.cli\n"
        "heavy = ('numpy', 'xarray', 'dask', 'zarr', 'rasterio', 'numba', 'prefect')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""
    for command in ("simulate", "ingest", "fuse", "evaluate", "compare", "run", "plan", "demo"):
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, command
