"""The local instance's run launcher: Dagster's default one, plus the health check run monitoring needs.

Dagster's default launcher cannot tell whether a run's process is alive, so a run killed with
SIGKILL (or lost with its machine) stays STARTED forever and automation never runs its partition
again. This one reads the process ids the run's own events record ("Executing steps in process
(pid: N)") and reports the worker FAILED once none of them is alive on this machine; the daemon's
run monitoring then marks the run failed. (In Kubernetes, Dagster's K8sRunLauncher checks the run's
job instead.) Without a daemon, `tvtime fail-dead-runs` does the same, and the Makefile runs it
before it launches anything.
"""

from __future__ import annotations

import logging

import dagster as dg
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, DefaultRunLauncher, RunsFilter
from dagster._core.definitions.executor_definition import multi_or_in_process_executor
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus  # the health check's types: not exported

from tvtime_platform.resources.scratch import process_alive


class LocalRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` whose runs' workers run monitoring can check."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def run_pids(self, run: DagsterRun) -> list[int]:
        """The ids of the processes the run's events say it executes in."""
        records = self._instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
        pids = []
        for record in records:
            data = record.dagster_event.engine_event_data if record.dagster_event else None
            pid = data.metadata.get("pid") if data else None
            if pid is not None and str(pid.value).isdigit():
                pids.append(int(pid.value))
        return pids

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pids = self.run_pids(run)
        if not pids:
            # Not started yet: the start timeout of run monitoring covers a run that never starts.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run has not reported its process yet")
        if any(process_alive(pid) for pid in pids):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"no process of the run is alive on this machine (pids {', '.join(map(str, pids))})"
        )


def fail_dead_runs(instance: DagsterInstance) -> list[str]:
    """What run monitoring does in the daemon, for an instance used without one (`dg launch` from the Makefile): mark
    the STARTED runs whose processes are all gone failed and free the pool slots their steps held, so the next run is
    not blocked behind them. Returns what was done, one line per run."""
    launcher = instance.run_launcher
    if not isinstance(launcher, LocalRunLauncher):
        return []
    done = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        run = record.dagster_run
        health = launcher.check_run_worker_health(run)
        if health.status == WorkerStatus.FAILED:
            instance.report_run_failed(run, f"Marked failed: {health.msg}.")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            done.append(f"run {run.run_id} ({run.job_name}) marked failed: {health.msg}; its pool slots freed")
    return done


def dead_slot_holders(instance: DagsterInstance) -> list[str]:
    """The pool slots held by runs that no longer run (their processes died, or they ended without freeing them), one
    line each saying what to do: a step of that pool waits for the slot, saying so only at DEBUG level."""
    launcher = instance.run_launcher
    if not isinstance(launcher, LocalRunLauncher):  # elsewhere the daemon's run monitoring frees them
        return []
    storage = instance.event_log_storage
    held = []
    for pool in storage.get_concurrency_keys():
        for slot in storage.get_concurrency_info(pool).claimed_slots:
            run = instance.get_run_by_id(slot.run_id)
            if run is None or run.is_finished:
                why = "which has ended"
            elif run.status == DagsterRunStatus.STARTED and launcher.check_run_worker_health(run).status == (
                WorkerStatus.FAILED
            ):
                why = "whose processes are gone"
            else:
                continue
            held.append(
                f"Pool {pool}: its slot is held by run {slot.run_id} ({slot.step_key}), {why}; steps of the pool wait "
                "until it is freed. Free it with `tvtime fail-dead-runs` (the daemon does it when it runs: make ui)."
            )
    return held


def _warning_of_dead_slot_holders(init_context: dg.InitExecutorContext) -> dg.Executor:
    for line in dead_slot_holders(init_context.instance):
        logging.getLogger("dagster").warning(line)
    return multi_or_in_process_executor.executor_creation_fn(init_context)


# Dagster's default executor, which first warns of pool slots that dead runs hold (a run launched with `dg launch`
# would otherwise wait for them without a word).
local_executor = dg.ExecutorDefinition(
    name=multi_or_in_process_executor.name,
    config_schema=multi_or_in_process_executor.config_schema,
    executor_creation_fn=_warning_of_dead_slot_holders,
    requirements=multi_or_in_process_executor.get_requirements,
    description=multi_or_in_process_executor.description,
)
