"""The trainer in a Kubernetes pod (`trainer_launch` mode `k8s`): `PipesK8sClient` from dagster-k8s (installed by
`make install`) starts one pod running torchrun with one rank per GPU it requests, and reads rank 0's Pipes messages from
the pod's logs.

The pod must see the run directory at the path the asset's own process sees it: the storage root
(GAN_STORAGE_ROOT) lives on a ReadWriteMany PersistentVolumeClaim mounted at the same path in the Dagster
step's pod and in the trainer's (the asset writes the inputs there, the ranks write checkpoints there, and the
asset reads the manifest back). /dev/shm is a memory volume, since NCCL's shared-memory transport needs more
than a container's default 64 MiB. pipelines/k8s.py builds the definitions for a cluster.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.errors import DagsterPipesExecutionError


class TrainerPod(dg.Config):
    """The trainer pod: its image (this project installed, with a CUDA torch), resources and run-directory volume."""

    image: str
    volume_claim: str  # a ReadWriteMany PVC holding the storage root
    mount_path: str  # where the storage root is mounted: the same path the asset's process uses (GAN_STORAGE_ROOT)
    namespace: str | None = None  # None: the namespace Dagster runs in, else "default"
    gpus: int = 1  # nvidia.com/gpu requested; torchrun starts one rank per GPU (0: a CPU pod, gloo ranks)
    cpu: str | None = None  # e.g. "8": requests and limits
    memory: str | None = None  # e.g. "32Gi"
    node_selector: dict[str, str] = {}  # e.g. {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def pod_spec(pod: TrainerPod) -> dict[str, Any]:
    """The `base_pod_spec` of the trainer pod (PipesK8sClient sets the image, the command and the Pipes env)."""
    limits = {"nvidia.com/gpu": str(pod.gpus)} if pod.gpus > 0 else {}
    limits |= {k: v for k, v in (("cpu", pod.cpu), ("memory", pod.memory)) if v}
    requests = {k: v for k, v in limits.items() if k != "nvidia.com/gpu"}
    return {
        "containers": [{
            "name": "trainer",
            "resources": {"limits": limits, **({"requests": requests} if requests else {})},
            "volume_mounts": [{"name": "runs", "mount_path": pod.mount_path}, {"name": "dshm", "mount_path": "/dev/shm"}],
        }],
        "volumes": [{"name": "runs", "persistent_volume_claim": {"claim_name": pod.volume_claim}},
                    {"name": "dshm", "empty_dir": {"medium": "Memory"}}],
        "restart_policy": "Never",  # torchrun's --max-restarts restarts the ranks; a failed pod fails the asset
        **({"node_selector": dict(pod.node_selector)} if pod.node_selector else {}),
    }


def run_in_pod(context: dg.AssetExecutionContext, pod: TrainerPod | None, command: list[str], extras: dict):
    """Start the trainer pod and wait for it; a failed pod raises `DagsterPipesExecutionError` like a failed
    subprocess, so both launches fail the asset the same way."""
    if pod is None:
        raise ValueError("trainer_launch mode 'k8s' needs its `pod` (image, volume_claim, mount_path): "
                         "see pipelines/k8s.py")
    from dagster_k8s import PipesK8sClient  # imported here: only a cluster deployment needs it
    from dagster_k8s.client import DagsterK8sError

    try:
        return PipesK8sClient().run(context=context, image=pod.image, command=command, namespace=pod.namespace,
                                    base_pod_spec=pod_spec(pod), extras=extras)
    except DagsterK8sError as err:
        raise DagsterPipesExecutionError(f"the trainer pod failed: {err}") from err
