"""Recovering runs whose process is gone, and retrying only the failures a retry can fix.

A run worker killed with SIGKILL (or by the OOM killer, or a power cut) never records its end: the run
stays STARTED and keeps its `gpu` pool slot, so every later training waits forever. Dagster's run
monitoring cannot see this with the default run launcher (it has no worker health check; it only times
out runs stuck in STARTING), so the project checks itself: a run in progress whose worker process (the
pid on its RUN_START event) no longer exists, or is a newer process that reused the pid, is marked failed
and its pool slots are freed. `make run` does this before it launches; in `dagster dev` / the daemon the
`dead_run_sensor` does it every minute, and `run_retries` then retries the failed run, which resumes from
its last checkpoint. This assumes runs execute on this host (the default launcher, `make run`); a
cluster's launcher (dagster-k8s) has worker health checks of its own, and run monitoring covers it.

Retries are for crashes, not for mistakes: a run that failed because its input is wrong (a partition key
that cannot name a folder, a bad experiment file, data that does not fit it, a setting beyond this machine's
memory, a stored file that is not what was written) fails the same way minutes later.
`no_retry_on_user_error` (a failure hook on every asset) tags such a run so that Dagster's run-retry
daemon skips it. Any other failure is still retried: a dead worker (marked failed here), a step process
killed under the multiprocess executor (a RUN_EXCEPTION), a step that raised anything else (a killed
torchrun rank or pod, a missing upstream file). The tag is copied to a manual re-execution of such a run
(Dagster copies run tags), where it stops retries of step exceptions only.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.tags import RETRY_ON_ASSET_OR_OP_FAILURE_TAG

from gan_assets.core.config import ConfigError
from gan_assets.core.data.sources import DatasetError
from gan_assets.core.runtime.memory import MemoryLimitError
from gan_assets.core.storage import ExperimentKeyError, StoredFileError

IN_PROGRESS = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
HOST_TAG = "gan/host"  # the host a run's worker ran on, where we set it (make run)
# Failures that name a wrong input and its fix (the ones `make run` prints in one line, pipelines/cli/console.py):
# retrying cannot help. A missing upstream file (FileNotFoundError) or anything else is not among them.
USER_ERRORS = (ExperimentKeyError, ConfigError, DatasetError, MemoryLimitError, StoredFileError)


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), or None when there is no such process."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir() and Path("/proc/stat").is_file():
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return None
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, counted from field 3
    try:  # no /proc: existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return 0.0


def worker_is_alive(pid: int, run_started_at: float) -> bool:
    started = process_start_time(pid)
    return started is not None and started <= run_started_at + 2.0  # a later process reused the pid


def run_worker(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, time) of the run's RUN_START event: the process that executes it."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START, limit=1).records
    if not records:
        return None
    entry = records[0].event_log_entry
    return entry.dagster_event.pid, entry.timestamp


def recover_dead_runs(instance: dg.DagsterInstance, log=print) -> list[str]:
    """Mark failed (and free the pool slots of) every in-progress run whose worker process is gone."""
    recovered = []
    for run in instance.get_runs(dg.RunsFilter(statuses=IN_PROGRESS)):
        if run.tags.get(HOST_TAG, socket.gethostname()) != socket.gethostname():
            continue  # its worker ran elsewhere: not ours to judge
        worker = run_worker(instance, run.run_id)
        if worker is None or worker[0] is None or worker_is_alive(*worker):
            continue
        message = (f"run worker (pid {worker[0]}) is gone without recording an end (killed or crashed): "
                   "marked failed and its pool slots freed, so later runs are not blocked")
        instance.report_run_failed(run, message)
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        log(f"recovered run {run.run_id}: {message}")
        recovered.append(run.run_id)
    return recovered


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Marks failed the runs whose worker process died (SIGKILL, OOM) and frees their pool slots.")
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    recovered = recover_dead_runs(context.instance, log=context.log.warning)
    return dg.SkipReason(f"recovered {recovered}" if recovered else "no dead runs")


def user_error(exception: BaseException | None) -> BaseException | None:
    """The user error (USER_ERRORS) `exception` is, or was raised from (`raise ... from`), else None."""
    while exception is not None:
        if isinstance(exception, USER_ERRORS):
            return exception
        exception = exception.__cause__
    return None


@dg.failure_hook(name="no_retry_on_user_error")
def no_retry_on_user_error(context: dg.HookContext) -> None:
    """Tag the run `dagster/retry_on_asset_or_op_failure: false` when a step failed on a user error.

    Dagster decides whether to retry a run when its failure is recorded, after the steps (and their hooks)
    ended (`auto_reexecution_should_retry_run` in dagster/_core/execution/retries.py: a run failed with reason
    STEP_FAILURE and this tag false is not retried; other reasons ignore the tag). Raising
    `dg.Failure(allow_retries=False)` would not do: it governs op retry policies only, not run retries.
    """
    error = user_error(context.op_exception)
    if error is None or context.instance is None:
        return
    context.instance.add_run_tags(context.run_id, {RETRY_ON_ASSET_OR_OP_FAILURE_TAG: "false"})
    context.log.warning(f"not retrying this run: {type(error).__name__} is an input error, a retry would fail "
                        f"the same way ({error})")
