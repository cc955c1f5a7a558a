"""The trainer in a Kubernetes pod (`trainer_launch` mode `k8s`): `PipesK8sClient` from dagster-k8s (installed by
`make install`) starts one pod running torchrun with one rank per GPU it requests, and reads rank 0's Pipes messages from
the pod's logs.

The pod must see the run directory at the path the asset's own process sees it: the storage root
(GAN_STORAGE_ROOT) lives on a ReadWriteMany PersistentVolumeClaim mounted at the same path in the Dagster
step's pod and in the trainer's (the asset writes the inputs there, the ranks write checkpoints there, and the
asset reads the manifest back). /dev/shm is a memory volume, since NCCL's shared-memory transport needs more
than a container's default 64 MiB. pipelines/k8s.py builds the definitions for a cluster.

The pod always requests CPU and memory (a pod without requests is QoS class BestEffort: the first evicted under
memory pressure, and its ranks' driver threads get no CPU share on a busy node), tolerates the `nvidia.com/gpu`
taint GPU node pools carry when it asks for GPUs, and trains on its own device (`TrainerPod.device`), never on the
Dagster process's.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.errors import DagsterPipesExecutionError

from gan_assets.core.runtime.device import check_device_name

# Requests per rank when no request or limit is set: a rank's driver thread, NCCL's threads and host-side work, and
# a CUDA process's host memory (its libraries and context) beside the run's inputs.
CPU_PER_RANK = 2
MEMORY_GI_PER_RANK = 8
# The taint managed GPU pools (GKE, AKS, EKS with the NVIDIA operator) put on their nodes to keep other pods off.
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


class TrainerPod(dg.Config):
    """The trainer pod: its image (this project installed, with a CUDA torch), resources, placement, device and
    run-directory volume."""

    image: str
    volume_claim: str  # a ReadWriteMany PVC holding the storage root
    mount_path: str  # where the storage root is mounted: the same path the asset's process uses (GAN_STORAGE_ROOT)
    namespace: str | None = None  # None: the namespace Dagster runs in, else "default"
    gpus: int = 1  # nvidia.com/gpu requested; torchrun starts one rank per GPU (0: a CPU pod, gloo ranks)
    cpu: str | None = None  # CPU limit, e.g. "8" (None: none); the request too, unless cpu_request is set
    memory: str | None = None  # memory limit, e.g. "32Gi" (None: none); the request too, unless memory_request is set
    cpu_request: str | None = None  # None: `cpu` when set, else CPU_PER_RANK per rank
    memory_request: str | None = None  # None: `memory` when set, else MEMORY_GI_PER_RANK Gi per rank
    node_selector: dict[str, str] = {}  # e.g. {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    # the cluster's own taints to tolerate, e.g. [{"key": "pool", "operator": "Equal", "value": "training",
    # "effect": "NoSchedule"}]; the nvidia.com/gpu one is added whenever the pod asks for GPUs
    tolerations: list[dict[str, str]] = []
    device: str = "auto"  # the ranks' torch device: auto (the pod's GPUs when it has them, else its CPU), cpu, cuda


def resource_requirements(pod: TrainerPod) -> dict[str, dict[str, str]]:
    """The trainer container's `resources`: requests always (at most the limits), limits when set, and the GPUs as a
    limit only (Kubernetes takes an extended resource's request from its limit)."""
    ranks = max(1, pod.gpus)
    requests = {"cpu": pod.cpu_request or pod.cpu or str(CPU_PER_RANK * ranks),
                "memory": pod.memory_request or pod.memory or f"{MEMORY_GI_PER_RANK * ranks}Gi"}
    limits = {"nvidia.com/gpu": str(pod.gpus)} if pod.gpus > 0 else {}
    limits |= {k: v for k, v in (("cpu", pod.cpu), ("memory", pod.memory)) if v}
    _check_requests_within_limits(requests, limits)
    return {"requests": requests, **({"limits": limits} if limits else {})}


def _check_requests_within_limits(requests: dict[str, str], limits: dict[str, str]) -> None:
    # The API server refuses such a pod too, but only once the asset has written its inputs; this names the settings.
    from kubernetes.utils import parse_quantity  # a dagster-k8s dependency, like the client itself

    for name, request in requests.items():
        if name in limits and parse_quantity(request) > parse_quantity(limits[name]):
            raise ValueError(f"trainer pod: {name}_request {request} exceeds the {name} limit {limits[name]}; "
                             f"a request must not exceed its limit")


def tolerations(pod: TrainerPod) -> list[dict[str, str]]:
    """The user's tolerations, plus the GPU taint's when the pod asks for GPUs."""
    gpu = [GPU_TOLERATION] if pod.gpus > 0 and GPU_TOLERATION not in pod.tolerations else []
    return [dict(t) for t in pod.tolerations] + gpu


def pod_device(pod: TrainerPod) -> str:
    """The device the pod's ranks train on, checked before any pod starts."""
    try:
        return check_device_name(pod.device)
    except ValueError:
        raise ValueError(f"trainer pod: device {pod.device!r} is not one of auto, cpu, cuda, cuda:N "
                         f"(TrainerPod.device; GAN_K8S_DEVICE in pipelines/k8s.py)") from None


def pod_spec(pod: TrainerPod) -> dict[str, Any]:
    """The `base_pod_spec` of the trainer pod (PipesK8sClient sets the image, the command and the Pipes env)."""
    tolerated = tolerations(pod)
    return {
        "containers": [{
            "name": "trainer",
            "resources": resource_requirements(pod),
            "volume_mounts": [{"name": "runs", "mount_path": pod.mount_path}, {"name": "dshm", "mount_path": "/dev/shm"}],
        }],
        "volumes": [{"name": "runs", "persistent_volume_claim": {"claim_name": pod.volume_claim}},
                    {"name": "dshm", "empty_dir": {"medium": "Memory"}}],
        "restart_policy": "Never",  # torchrun's --max-restarts restarts the ranks; a failed pod fails the asset
        **({"node_selector": dict(pod.node_selector)} if pod.node_selector else {}),
        **({"tolerations": tolerated} if tolerated else {}),
    }


def run_in_pod(context: dg.AssetExecutionContext, pod: TrainerPod | None, command: list[str], extras: dict):
    """Start the trainer pod and wait for it; a failed pod raises `DagsterPipesExecutionError` like a failed
    subprocess, so both launches fail the asset the same way. The ranks train on `pod.device`, whatever device
    `extras` carries (the Dagster process's own: a CPU-only Dagster pod would otherwise keep a GPU pod on its CPU)."""
    if pod is None:
        raise ValueError("trainer_launch mode 'k8s' needs its `pod` (image, volume_claim, mount_path): "
                         "see pipelines/k8s.py")
    from dagster_k8s import PipesK8sClient  # imported here: only a cluster deployment needs it
    from dagster_k8s.client import DagsterK8sError

    extras = {**extras, "device": pod_device(pod)}
    try:
        return PipesK8sClient().run(context=context, image=pod.image, command=command, namespace=pod.namespace,
                                    base_pod_spec=pod_spec(pod), extras=extras)
    except DagsterK8sError as err:
        raise DagsterPipesExecutionError(f"the trainer pod failed: {err}") from err
