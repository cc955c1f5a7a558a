"""The code location for a Kubernetes cluster: the same assets, with `gan_checkpoints` training in a GPU pod.

`dagster dev -m pipelines.k8s` (or the code-location server of a dagster-k8s Helm deployment) loads these
definitions. Only the `trainer_launch` resource differs from pipelines/definitions.py: mode `k8s`, so
`PipesK8sClient` (dagster-k8s, installed by `make install`) starts one pod per training, running
`torchrun --standalone --nproc-per-node <GPUs>` on `python -m gan_assets.trainer.pipes_trainer`, with the GPUs as
`nvidia.com/gpu` limits (CPU and memory requests, and the GPU taint's toleration: gan_assets/resources/trainer_k8s.py)
and the run directory's PersistentVolumeClaim mounted at the storage root. The other
assets run in the Dagster step's process (or pod, with dagster-k8s' `K8sRunLauncher`), which must mount the
same claim at the same path. Settings (environment of the code location):

  GAN_K8S_IMAGE        the trainer image: this project installed with a CUDA torch (default gan-assets:latest)
  GAN_K8S_RUNS_CLAIM   a ReadWriteMany PVC holding the storage root (default gan-runs)
  GAN_STORAGE_ROOT     where that claim is mounted, in every pod (default /data)
  GAN_K8S_GPUS         GPUs of the trainer pod, one rank each (default 1; 0: a CPU pod, gloo ranks)
  GAN_K8S_NAMESPACE    the trainer pod's namespace (default: Dagster's own, else default)
  GAN_K8S_DEVICE       the trainer pod's torch device (default auto: the pod's GPUs when it has them); GAN_DEVICE
                       is the Dagster process's own device (the assets trained or scored there), never the pod's
  GAN_EXPERIMENTS_DIR  the experiment files (default /data/experiments)
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from gan_assets.resources.trainer_k8s import TrainerPod
from gan_assets.resources.trainer_launch import TrainerLaunch
from pipelines.definitions import build_definitions

# The pod's device, a setting of its own: GAN_DEVICE describes the Dagster process's machine (often CPU-only), and
# sending it to the pod would keep a GPU pod on its CPU.
POD_DEVICE_SETTING = "GAN_K8S_DEVICE"


def k8s_trainer_launch(image: str, volume_claim: str, mount_path: str, gpus: int = 1, namespace: str | None = None,
                       max_restarts: int = 0, device: str = "auto") -> TrainerLaunch:
    """`trainer_launch` mode k8s: one pod with `gpus` GPUs, training on `device` (the pod's own)."""
    return TrainerLaunch(mode="k8s", max_restarts=max_restarts,
                         pod=TrainerPod(image=image, volume_claim=volume_claim, mount_path=mount_path, gpus=gpus,
                                        namespace=namespace, device=device))


def build_k8s_definitions(environ=os.environ) -> dg.Definitions:
    storage_root = environ.get("GAN_STORAGE_ROOT", "/data")
    launch = k8s_trainer_launch(image=environ.get("GAN_K8S_IMAGE", "gan-assets:latest"),
                                volume_claim=environ.get("GAN_K8S_RUNS_CLAIM", "gan-runs"), mount_path=storage_root,
                                gpus=int(environ.get("GAN_K8S_GPUS", "1")), namespace=environ.get("GAN_K8S_NAMESPACE"),
                                device=environ.get(POD_DEVICE_SETTING) or "auto")
    experiments = environ.get("GAN_EXPERIMENTS_DIR", str(Path(storage_root) / "experiments"))
    return build_definitions(storage_root, experiments, device=environ.get("GAN_DEVICE", "auto"), trainer=launch)


defs = build_k8s_definitions()
