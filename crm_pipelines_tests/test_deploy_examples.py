"""Issue 15: the deployment examples under ``deploy/`` load and run as written.

Each example's ``dagster.yaml`` is loaded as its machines would load it (secrets set to dummy values, Dagster's
storage on the test PostgreSQL), its run launcher instantiated without a Kubernetes cluster, a Docker daemon or
a Celery broker, and the definitions validated under the executor the example picks
(``$CRM_PIPELINES_EXECUTOR``, ``crm_pipelines/executors.py``). The sync loop's runs must stay in process under
every executor, and the `<crm>_api` pools must be the instance's."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.executor.in_process import InProcessExecutor
from dagster._core.executor.multiprocess import MultiprocessExecutor
from dagster._core.executor.step_delegating import StepDelegatingExecutor
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_celery.cli import get_validated_config
from dagster_celery.executor import CeleryExecutor
from dagster_docker import DockerRunLauncher
from dagster_docker.docker_executor import DockerStepHandler
from dagster_k8s import K8sRunLauncher
from dagster_k8s.executor import K8sStepHandler
from dagster_postgres import PostgresRunStorage
from kubernetes.config import incluster_config

from crm_pipelines.defs.sync.busy import chains_wait_their_turn
from crm_pipelines.defs.sync.change_sensor import IN_PROCESS
from crm_pipelines.executors import EXECUTOR_ENV, step_executor
from crm_pipelines_tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
# each example, the executor it runs with, and the run launcher its dagster.yaml names
EXAMPLES = {
    "postgres": ("multiprocess", DefaultRunLauncher),
    "docker": ("docker", DockerRunLauncher),
    "kubernetes": ("k8s", K8sRunLauncher),
    "celery": ("celery", DefaultRunLauncher),
}
BROKER = "pyamqp://dagster:dummy@broker.invalid:5672//"
# what a machine of each example has in its environment, with dummy values (PostgreSQL: the test server's)
DUMMY_ENV = {
    "CRM_PIPELINES_SETTINGS": str(REPO_ROOT / "crm_pipelines.example.yaml"),  # the Dockerfile's default
    "CRM_PIPELINES_STATE_DB_URL": "postgresql+psycopg2://crm:dummy@state.invalid:5432/crm_pipelines",
    "HUBSPOT_ACCESS_TOKEN": "dummy",
    "SALESFORCE_CLIENT_ID": "dummy",
    "SALESFORCE_CLIENT_SECRET": "dummy",
    "DYNAMICS_TENANT_ID": "dummy",
    "DYNAMICS_CLIENT_ID": "dummy",
    "DYNAMICS_CLIENT_SECRET": "dummy",
    "DAGSTER_CELERY_BROKER_URL": BROKER,
    "DAGSTER_CELERY_BACKEND_URL": "rpc://",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "crm-pipelines-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": "crm-pipelines-postgresql",
    "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "crm-pipelines-run-env",
}
PROBE = dg.AssetKey("deploy_probe")
PROBE_POOL = "deploy_probe_api"  # a pool of its own, as each connection's `<crm>_api`, with no limit set


@dg.asset(key=PROBE, pool=PROBE_POOL)
def deploy_probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"pid": os.getpid()})


def probe_job() -> dg.JobDefinition:
    """One asset in a pool, on the executor ``$CRM_PIPELINES_EXECUTOR`` picks, as ``crm_pipelines/definitions.py``
    builds it (module level: Dagster reconstructs the job from here)."""
    defs = dg.Definitions(assets=[deploy_probe], jobs=[dg.define_asset_job("deploy_probe_job", [PROBE])],
                          executor=step_executor())
    return defs.resolve_job_def("deploy_probe_job")


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture
def fake_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Kubernetes gives a pod: the API server's address and a service-account token and CA certificate
    (files with dummy contents: nothing here connects to a cluster)."""
    token, cert = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("dummy-token")
    cert.write_text("dummy-ca")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cert))


def _machine_env(example: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**DUMMY_ENV, "DAGSTER_HOME": str(home), EXECUTOR_ENV: EXAMPLES[example][0]}.items():
        monkeypatch.setenv(name, value)


def _home(example: str, tmp_path: Path) -> Path:
    home = tmp_path / f"home-{example}"
    home.mkdir()
    shutil.copyfile(DEPLOY / example / "dagster.yaml", home / "dagster.yaml")
    return home


@pytest.fixture
def example_instance(request: pytest.FixtureRequest, pg_url: str, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch, fake_pod: None) -> Iterator[dg.DagsterInstance]:
    """The instance of the example ``request.param`` as one of its machines loads it from its dagster.yaml."""
    example = request.param
    home = _home(example, tmp_path)
    _machine_env(example, home, monkeypatch)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.mark.postgres
@pytest.mark.parametrize("example_instance", list(EXAMPLES), indirect=True)
def test_each_example_instance_loads_its_run_launcher_queue_pools_and_monitoring(
    example_instance: dg.DagsterInstance, request: pytest.FixtureRequest,
) -> None:
    """Every example keeps Dagster's storage in PostgreSQL, instantiates its run launcher, queues runs with a
    one-second dequeue (issue 14's latency), holds a chain run until the running one ends, limits every pool to
    one step at a time unless set otherwise (`<crm>_api`, OPS-2) and frees the slots of runs whose worker died."""
    example = request.node.callspec.params["example_instance"]
    instance = example_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert type(instance.run_launcher) is EXAMPLES[example][1]
    coordinator = instance.run_coordinator
    assert isinstance(coordinator, QueuedRunCoordinator)
    assert coordinator.dequeue_interval_seconds == 1
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert chains_wait_their_turn(instance)  # a chain run queued behind the running one (issue 14)
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0


@pytest.mark.postgres
@pytest.mark.parametrize("example_instance", list(EXAMPLES), indirect=True)
def test_a_sync_loop_run_completes_in_its_run_worker_under_each_example(
    example_instance: dg.DagsterInstance, request: pytest.FixtureRequest,
) -> None:
    """The run config the change sensor gives the loop's runs (``IN_PROCESS``) is valid under every example's
    executor, and such a run executes its steps in the run worker itself (no pod, container or Celery task per
    step: nothing here could start one), claiming its pool's slot at the instance's default limit."""
    instance = example_instance
    result = dg.execute_job(dg.reconstructable(probe_job), instance=instance, run_config=IN_PROCESS)
    assert result.success
    event = instance.get_latest_materialization_event(PROBE)
    assert event is not None and event.run_id == result.run_id
    assert event.asset_materialization.metadata["pid"].value == os.getpid()
    assert instance.event_log_storage.get_concurrency_info(PROBE_POOL).slot_count == 1


@pytest.mark.parametrize(("kind", "scale_out"), [
    ("multiprocess", MultiprocessExecutor), ("k8s", K8sStepHandler), ("docker", DockerStepHandler),
    ("celery", CeleryExecutor)])  # fmt: skip
def test_the_loop_runs_in_process_and_other_runs_scale_out(
    kind: str, scale_out: type, fake_pod: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under each executor, a run without run config (a backfill, the sweep, a run from the UI) hands its steps
    to the scale-out machinery (a Job per step, a container per step, a Celery task per step), and a run of the
    sync loop keeps them in its own process."""
    for name, value in {**DUMMY_ENV, EXECUTOR_ENV: kind}.items():
        monkeypatch.setenv(name, value)
    job, recon, instance = probe_job(), dg.reconstructable(probe_job), dg.DagsterInstance.ephemeral()
    creation_fn = job.executor_def.executor_creation_fn
    assert creation_fn is not None
    made = {}
    for label, run_config in (("default", {}), ("loop", IN_PROCESS)):
        config = dg.validate_run_config(job, run_config)["execution"]["crm_pipelines_executor"]
        made[label] = creation_fn(dg.InitExecutorContext(job=recon, executor_def=job.executor_def,
                                                         executor_config=config, instance=instance))
    assert isinstance(made["loop"], InProcessExecutor)
    executor = made["default"]
    if isinstance(executor, StepDelegatingExecutor):
        executor = executor._step_handler  # the step handler says where the steps go
    assert isinstance(executor, scale_out)
    if kind == "celery":  # the broker the executor sends steps to is the one worker.yaml points workers at
        assert executor.broker == BROKER
        assert get_validated_config(str(DEPLOY / "celery" / "worker.yaml"))["broker"] == BROKER


def test_an_unknown_executor_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXECUTOR_ENV, "kubernetes")
    with pytest.raises(ValueError, match=r"CRM_PIPELINES_EXECUTOR='kubernetes': expected one of multiprocess, k8s"):
        step_executor()


def _code_server_module(example: str) -> str:
    """The module each example's code server loads (``-m``), read from the example's own files."""
    if example == "kubernetes":
        args = _yaml(DEPLOY / "kubernetes" / "values.yaml")["dagster-user-deployments"]["deployments"][0]
        args = args["dagsterApiGrpcArgs"]
    else:
        source = {"postgres": "systemd/crm-pipelines-code.service", "docker": "Dockerfile", "celery": "Procfile"}
        text = (DEPLOY / example / source[example]).read_text(encoding="utf-8").replace("\\\n", " ")
        line = next(ln for ln in text.splitlines() if "code-server" in ln and not ln.lstrip().startswith("#"))
        args = re.findall(r'"([^"]+)"', line) if "CMD" in line else shlex.split(line)
    return args[args.index("-m") + 1]


@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_dagster_definitions_validate_passes_under_each_example(pg_url: str, tmp_path: Path) -> None:
    """``dagster definitions validate`` on the module each example's code server loads, with that example's
    dagster.yaml in DAGSTER_HOME and its executor: what a machine of the example checks before it serves. The
    four run side by side (each loads the definitions for several seconds)."""
    procs = {}
    for example, (kind, _) in EXAMPLES.items():
        home = _home(example, tmp_path)
        env = {**os.environ, **DUMMY_ENV, "DAGSTER_HOME": str(home), EXECUTOR_ENV: kind}
        module = _code_server_module(example)
        assert module == "crm_pipelines.definitions"
        procs[example] = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", module],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = {example: proc.communicate(timeout=600)[0] for example, proc in procs.items()}
    for example, proc in procs.items():
        assert proc.returncode == 0, f"{example}:\n{outputs[example][-3000:]}"
        assert "All code locations passed validation" in outputs[example]


def test_docker_run_containers_get_what_the_code_server_has() -> None:
    """A run (and step) container starts with the variables the DockerRunLauncher passes on: every one the
    compose file gives the code server, so runs reach the same databases and CRMs; it joins the compose
    network, where PostgreSQL is; and it has the Docker socket that docker_executor starts step containers
    through (CRM_PIPELINES_EXECUTOR=docker)."""
    compose = _yaml(DEPLOY / "docker" / "docker-compose.yml")
    launcher = _yaml(DEPLOY / "docker" / "dagster.yaml")["run_launcher"]["config"]
    code_env = set(compose["services"]["crm_pipelines_code"]["environment"]) - {"DAGSTER_CURRENT_IMAGE"}
    assert code_env <= set(launcher["env_vars"]), code_env - set(launcher["env_vars"])
    assert launcher["network"] == compose["networks"]["crm_pipelines_network"]["name"]
    assert compose["services"]["crm_pipelines_postgresql"]["networks"] == ["crm_pipelines_network"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in launcher["container_kwargs"]["volumes"]
    assert {s["host"] for s in (e["grpc_server"] for e in _yaml(DEPLOY / "docker" / "workspace.yaml")["load_from"])} \
        == {"crm_pipelines_code"}


def test_the_helm_values_and_the_kubernetes_instance_agree() -> None:
    """values.yaml makes the chart render the instance deploy/kubernetes/dagster.yaml spells out: K8sRunLauncher
    with the CRM secrets, the one-second queue, one chain run at a time, pools of one, run monitoring; and the user
    deployment runs each step as a Job (CRM_PIPELINES_EXECUTOR=k8s) and hands its environment to run pods."""
    values = _yaml(DEPLOY / "kubernetes" / "values.yaml")
    instance = _yaml(DEPLOY / "kubernetes" / "dagster.yaml")
    assert values["runLauncher"]["type"] == instance["run_launcher"]["class"] == "K8sRunLauncher"
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert [s["name"] for s in k8s["envSecrets"]] == instance["run_launcher"]["config"]["env_secrets"]
    assert k8s["loadInclusterConfig"] == instance["run_launcher"]["config"]["load_incluster_config"]
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["dequeueIntervalSeconds"] == instance["run_queue"]["dequeue_interval_seconds"]
    assert values["concurrency"]["enabled"]
    assert values["concurrency"]["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    runs = instance["concurrency"]["runs"]
    assert values["concurrency"]["runs"]["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["freeSlotsAfterRunEndSeconds"] == instance["run_monitoring"]["free_slots_after_run_end_seconds"]
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["env"][EXECUTOR_ENV] == "k8s"
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]
    assert [s["name"] for s in deployment["envSecrets"]] == instance["run_launcher"]["config"]["env_secrets"]


def test_a_step_in_another_pod_needs_only_the_databases() -> None:
    """Steps pass nothing through Dagster's IO managers (every dependency is a ``deps`` edge; data goes through
    the state database), so a step in another pod, container or Celery worker needs no storage shared with
    its run worker beyond the two databases."""
    from crm_pipelines.definitions import defs

    inputs = {(assets_def.node_def.name, name): assets_def.node_def.input_def_named(name).dagster_type
              for assets_def in defs().resolve_asset_graph().assets_defs if assets_def.is_executable
              for name in assets_def.keys_by_input_name}  # fmt: skip
    assert inputs, "the chain's assets depend on one another"
    assert not {where for where, dagster_type in inputs.items() if not dagster_type.is_nothing}
