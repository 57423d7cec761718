"""Where a run's steps execute (issue 15): the code location's executor, picked by ``$CRM_PIPELINES_EXECUTOR``.

- ``multiprocess`` (default): each step in its own process beside the run, forked from a server that has
  imported the project (single machine, ``deploy/postgres/``).
- ``k8s``: each step in its own Kubernetes Job (dagster-k8s' ``k8s_job_executor``, ``deploy/kubernetes/``).
- ``docker``: each step in its own container (dagster-docker's ``docker_executor``, ``deploy/docker/``).
- ``celery``: each step a Celery task that a worker on any machine picks up (dagster-celery's
  ``celery_executor``, ``deploy/celery/``); broker and result backend from ``DAGSTER_CELERY_BROKER_URL`` and
  ``DAGSTER_CELERY_BACKEND_URL``, the variables ``deploy/celery/worker.yaml`` names too.

Every kind takes the run config ``in_process: true`` that the sync loop's runs carry
(``defs/sync/change_sensor.IN_PROCESS``): their steps follow one another anyway, and a pod, container or
Celery round trip per step would add its start to every change's latency. Pools (``<crm>_api``) are the
instance's, claimed by the run worker before it hands a step out, so they hold under every kind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

EXECUTOR_ENV = "CRM_PIPELINES_EXECUTOR"
KINDS = ("multiprocess", "k8s", "docker", "celery")
IN_PROCESS_FIELD = {"in_process": dg.Field(bool, default_value=False)}


def _multiprocess() -> dg.ExecutorDefinition:
    # forked from a server that has imported the project, a step starts in about a second instead of the ~2 s
    # a fresh interpreter takes (measured), which a backfill pays per step
    return _in_process_or(dg.multiprocess_executor, "crm_pipelines_multiprocess").configured(
        lambda c: {"in_process": c["in_process"],
                   "start_method": {"forkserver": {"preload_modules": ["crm_pipelines.definitions"]}}},
        name="crm_pipelines_executor", config_schema=IN_PROCESS_FIELD)  # fmt: skip


def hold_storage_connection(instance: dg.DagsterInstance) -> None:
    """Let ``instance`` keep its connection to Dagster's storage open for the rest of this process instead of
    opening one per event, as dagster-postgres does by default (a sync loop run records some 180 events and
    opened about 450 connections, over a second of a run of a few seconds on a local server, more across a
    network). The webserver does the same through this method; no statement timeout is set. Nothing changes
    on SQLite storage."""
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=4)


def _in_process_or(scale_out: dg.ExecutorDefinition, name: str) -> dg.ExecutorDefinition:
    """``scale_out``'s executor with one more field, ``in_process``: when true the run's steps execute in the
    run worker, one after another, as ``in_process_executor`` does."""
    fields = dict(scale_out.config_schema.config_type.fields)  # type: ignore[attr-defined]

    def requirements(config: Mapping[str, Any]) -> list:
        return [] if config.get("in_process") else list(dg.multiple_process_executor_requirements())

    @dg.executor(name=name, config_schema={**IN_PROCESS_FIELD, **fields}, requirements=requirements)
    def _create(init_context: dg.InitExecutorContext) -> dg.Executor:
        config = dict(init_context.executor_config)
        if config.pop("in_process"):
            hold_storage_connection(init_context.instance)  # the run's steps all record events from this process
            chosen, config = dg.in_process_executor, {"retries": config["retries"]}
        else:
            chosen = scale_out
        creation_fn = chosen.executor_creation_fn
        assert creation_fn is not None
        return creation_fn(dg.InitExecutorContext(job=init_context.job, executor_def=chosen,
                                                  executor_config=config, instance=init_context.instance))

    return _create


def _k8s() -> dg.ExecutorDefinition:
    from dagster_k8s import k8s_job_executor

    # image, namespace, secrets and service account come from the K8sRunLauncher / the user deployment
    return _in_process_or(k8s_job_executor, "crm_pipelines_k8s").configured(
        lambda c: {"in_process": c["in_process"]}, name="crm_pipelines_executor", config_schema=IN_PROCESS_FIELD)


def _docker() -> dg.ExecutorDefinition:
    from dagster_docker import docker_executor

    # image (the code server's DAGSTER_CURRENT_IMAGE), network and environment come from the DockerRunLauncher
    return _in_process_or(docker_executor, "crm_pipelines_docker").configured(
        lambda c: {"in_process": c["in_process"]}, name="crm_pipelines_executor", config_schema=IN_PROCESS_FIELD)


def _celery() -> dg.ExecutorDefinition:
    from dagster_celery import celery_executor

    # the broker URL can carry a password: read from the environment in the run worker, never in run config
    return _in_process_or(celery_executor, "crm_pipelines_celery").configured(
        lambda c: {"in_process": c["in_process"], "broker": {"env": "DAGSTER_CELERY_BROKER_URL"},
                   "backend": {"env": "DAGSTER_CELERY_BACKEND_URL"}},
        name="crm_pipelines_executor", config_schema=IN_PROCESS_FIELD)  # fmt: skip


_BUILDERS: dict[str, tuple[Callable[[], dg.ExecutorDefinition], str]] = {
    "k8s": (_k8s, "dagster-k8s"),
    "docker": (_docker, "dagster-docker"),
    "celery": (_celery, "dagster-celery"),
}


def step_executor(kind: str | None = None) -> dg.ExecutorDefinition:
    """The executor of ``kind`` (default ``$CRM_PIPELINES_EXECUTOR``, else ``multiprocess``). The code server and
    every run worker load the definitions, so each needs the same value in its environment."""
    kind = (kind if kind is not None else os.environ.get(EXECUTOR_ENV, "")).strip() or "multiprocess"
    if kind == "multiprocess":
        return _multiprocess()
    if kind not in _BUILDERS:
        raise ValueError(f"{EXECUTOR_ENV}={kind!r}: expected one of {', '.join(KINDS)}")
    build, package = _BUILDERS[kind]
    try:
        return build()
    except ImportError as e:
        raise ImportError(f"{EXECUTOR_ENV}={kind} needs {package}: pip install 'crm_pipelines[deploy]' ({e})") from e
