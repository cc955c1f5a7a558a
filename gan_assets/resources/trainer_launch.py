"""Where `gan_checkpoints` trains: in its own process (the default), under torchrun on this machine, or in a
Kubernetes pod. A deployment setting, the `trainer_launch` resource, like the torch device.

Nothing here is part of the experiment, the run key or the asset's code version: switching the launch never
makes a run stale, and a run started one way resumes the other way from the same run directory (the global
batch is `training.batch_size` whatever the number of ranks; core/training/distributed.py). `GAN_TRAIN_NPROC=N`
(`make run NPROC=N`) selects torchrun with N ranks; pipelines/k8s.py configures the pod.

Outside its own process the trainer is `python -m gan_assets.trainer.pipes_trainer` under
`torchrun --standalone --nproc-per-node N`, launched by Dagster Pipes (`PipesSubprocessClient`, or
`PipesK8sClient` for a pod). It reports the materialization and both checks from rank 0; this side turns
them into the same output the in-process path yields, and fails the asset when:
- the trainer exits non-zero: with each failed rank's own message (the ranks leave them in `launch/`);
- it exits 0 without reporting a materialization and both checks (Dagster would otherwise record an empty one);
- what it reports is not what the run directory holds (a pod that does not share the run directory).
Cancelling the run: Dagster sends SIGINT to torchrun, whose agent passes it to every rank and waits for them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import dagster as dg
from dagster._core.errors import DagsterPipesExecutionError  # what a Pipes client raises for a failed process

from gan_assets.core.runtime.device import DeviceSettings
from gan_assets.core.telemetry.tracking import TrackingSettings
from gan_assets.core.training.manifest import RunManifest
from gan_assets.core.training.report import CHECK_NAMES, CheckOutcome, RunReport
from gan_assets.core.training.run import RunInputs
from gan_assets.core.training.trainer_inputs import write_trainer_inputs
from gan_assets.resources.live_events import DagsterLive, live_events_from
from gan_assets.resources.trainer_k8s import TrainerPod, run_in_pod
from gan_assets.trainer.pipes_trainer import STATUS_FILE

NPROC_SETTING = "GAN_TRAIN_NPROC"
TRAINER_MODULE = "gan_assets.trainer.pipes_trainer"
LAUNCH_DIR = "launch"  # inside the run directory: the trainer's inputs and the ranks' status files


class TrainerLaunch(dg.ConfigurableResource):
    """How training is launched: `in_process`, `torchrun` (N ranks on this machine) or `k8s` (a pod)."""

    mode: Literal["in_process", "torchrun", "k8s"] = "in_process"
    nproc_per_node: int = 1  # ranks: one per GPU on a GPU machine (or pod), gloo processes on CPU
    max_restarts: int = 0  # torchrun restarts all ranks after a failure; each restart resumes from the last checkpoint
    module: str = TRAINER_MODULE  # the entry point ranks run (`python -m`)
    pod: TrainerPod | None = None  # mode k8s: image, run-directory volume, resources

    @property
    def ranks(self) -> int:
        """One rank per GPU of the pod in mode k8s (when it requests GPUs), else `nproc_per_node`."""
        return self.pod.gpus if self.mode == "k8s" and self.pod is not None and self.pod.gpus > 0 else self.nproc_per_node

    def torchrun_command(self, python: str = sys.executable) -> list[str]:
        """`torchrun --standalone` (as `python -m torch.distributed.run`, so the same interpreter) on the trainer."""
        if self.ranks < 1 or self.max_restarts < 0:
            raise ValueError(f"trainer_launch: nproc_per_node {self.ranks} must be >= 1 and max_restarts "
                             f"{self.max_restarts} >= 0 (set by {NPROC_SETTING} or the resource's config)")
        return [python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(self.ranks),
                "--max-restarts", str(self.max_restarts), "-m", self.module]


def launch_from_env() -> TrainerLaunch:
    """`GAN_TRAIN_NPROC=N`: torchrun with N ranks; unset or empty: in process."""
    value = os.environ.get(NPROC_SETTING, "")
    if not value:
        return TrainerLaunch()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{NPROC_SETTING}={value!r}: the number of training processes must be a positive integer "
                         f"(unset it to train in the Dagster step's own process)")
    return TrainerLaunch(mode="torchrun", nproc_per_node=int(value))


def train_elsewhere(context: dg.AssetExecutionContext, launch: TrainerLaunch, config: dict, inputs: RunInputs,
                    run_dir: Path, device: DeviceSettings, tracking: TrackingSettings | None = None,
                    tags: dict[str, str] | None = None) -> tuple[RunManifest, RunReport]:
    """Run the trainer through Pipes; return the run's manifest and the report rank 0 sent. `config` is the JSON
    record of the config the asset loaded (validated then); the trainer validates it once, in its own process."""
    launch_dir = run_dir / LAUNCH_DIR
    shutil.rmtree(launch_dir, ignore_errors=True)  # statuses of an earlier launch must not speak for this one
    extras = {"config": config, "run_dir": str(run_dir), "device": device.name, "deterministic": device.deterministic,
              "compile": device.compile, "launch_dir": str(launch_dir),
              "inputs": str(write_trainer_inputs(inputs, launch_dir / "inputs.npz")),
              "tracking": asdict(tracking) if tracking is not None else None, "tracking_tags": tags or {}}
    context.log.info(f"training with {launch.ranks} rank(s) ({launch.mode}): {launch.module}")
    try:
        with live_events_from(launch_dir, DagsterLive(context)):  # rank 0's progress, on the asset page as it trains
            if launch.mode == "k8s":
                invocation = run_in_pod(context, launch.pod, launch.torchrun_command(python="python"), extras)
            else:
                invocation = dg.PipesSubprocessClient().run(context=context, command=launch.torchrun_command(),
                                                            extras=extras)
    except DagsterPipesExecutionError as err:
        raise dg.Failure(f"the trainer failed ({err}): " + rank_errors(launch_dir)) from err
    report = report_from_pipes(invocation.get_results(implicit_materializations=False), launch)
    manifest = RunManifest.read(run_dir)
    if manifest is None or not manifest.checkpoints or manifest.latest.generator_sha256 != report.data_version:
        raise dg.Failure(f"the trainer reported generator {report.data_version[:12]}…, but {run_dir} holds "
                         f"{'no checkpoint' if manifest is None or not manifest.checkpoints else manifest.latest.name}: "
                         f"the trainer must write to the run directory this process reads (a shared volume on a cluster)")
    return manifest, report


def rank_errors(launch_dir: Path) -> str:
    """The failed ranks' own messages, the first failure first (the others often only lost their peer)."""
    statuses = [json.loads(path.read_text()) for path in sorted(launch_dir.glob(STATUS_FILE.format(rank="*")))]
    errors = [s["error"] for s in sorted(statuses, key=lambda s: s["time"]) if s.get("status") == "failed"]
    return "; ".join(errors) or "no rank left an error message (killed by a signal or out of memory? see its stderr)"


def report_from_pipes(results, launch: TrainerLaunch) -> RunReport:
    """The report rank 0 sent: exactly one materialization with a data version, and both checks."""
    materializations = [r for r in results if isinstance(r, dg.MaterializeResult)]
    checks = {r.check_name: r for r in results if isinstance(r, dg.AssetCheckResult)}
    missing = [name for name in CHECK_NAMES if name not in checks]
    if len(materializations) != 1 or materializations[0].data_version is None or missing:
        raise dg.Failure(f"the trainer ({launch.module}) exited 0 but reported {len(materializations)} "
                         f"materialization(s) and is missing checks {missing}: a trainer that reports nothing has not "
                         f"trained; it must report one materialization with its data version and the checks "
                         f"{list(CHECK_NAMES)}")
    [materialization] = materializations
    return RunReport(data_version=materialization.data_version.value, facts=_values(materialization.metadata),
                     checks={name: CheckOutcome(checks[name].passed, _values(checks[name].metadata))
                             for name in CHECK_NAMES})


def _values(metadata) -> dict:
    return {key: value.value for key, value in (metadata or {}).items()}
