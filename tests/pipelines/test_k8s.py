"""The Kubernetes configuration without a cluster: pipelines/k8s.py loads, and the pod that `gan_checkpoints`
really asks for (captured from PipesK8sClient's call to the Kubernetes API) has the image, the torchrun command,
the GPU limits, CPU and memory requests, the GPU toleration, the pod's own device and the run-directory volume
intended. Needs dagster-k8s (`make install` installs it)."""

import warnings

import dagster as dg
import pytest

warnings.filterwarnings("ignore", message="Found version mismatch between `dagster-shared`")
dagster_k8s = pytest.importorskip("dagster_k8s", reason="dagster-k8s is not installed (`make install` installs it)")

from dagster_k8s.client import DagsterK8sError, DagsterKubernetesClient  # noqa: E402
from dagster_pipes import decode_param  # noqa: E402

from gan_assets.resources.trainer_k8s import GPU_TOLERATION, TrainerPod, pod_spec, run_in_pod  # noqa: E402
from pipelines.k8s import build_k8s_definitions  # noqa: E402
from tests.conftest import TINY_EXPERIMENT, experiment_instance  # noqa: E402

IMAGE = "registry.example/gan-assets:1"


class FakeCluster:
    """The Kubernetes API as PipesK8sClient uses it: pods are recorded, and none ever runs."""

    def __init__(self):
        self.created, self.deleted = [], []
        self.core_api = self

    def create_namespaced_pod(self, namespace, body):
        self.created.append((namespace, body))

    def delete_namespaced_pod(self, name, namespace):
        self.deleted.append(name)

    def wait_for_pod(self, *args, **kwargs):
        raise DagsterK8sError("no cluster in this test: the pod never ran")


@pytest.fixture
def cluster(monkeypatch):
    fake = FakeCluster()
    monkeypatch.setattr(DagsterKubernetesClient, "production_client", staticmethod(lambda *a, **k: fake))
    monkeypatch.setattr(dagster_k8s.PipesK8sClient, "_load_k8s_config", lambda self: None)
    return fake


def test_gan_checkpoints_asks_for_the_intended_trainer_pod(tmp_path, cluster):
    instance = experiment_instance(tmp_path / "experiments", "tiny", TINY_EXPERIMENT)
    # GAN_DEVICE=cpu: the Dagster process's own (CPU-only) machine, which must not keep the GPU pod on its CPU
    env = {"GAN_STORAGE_ROOT": str(tmp_path / "store"), "GAN_EXPERIMENTS_DIR": str(tmp_path / "experiments"),
           "GAN_K8S_IMAGE": IMAGE, "GAN_K8S_GPUS": "4", "GAN_K8S_RUNS_CLAIM": "gan-runs", "GAN_K8S_NAMESPACE": "gan",
           "GAN_DEVICE": "cpu"}
    defs = build_k8s_definitions(env)
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key="tiny", raise_on_error=False,
        asset_selection=[dg.AssetKey(k) for k in ("dataset", "reference_batch", "gan_checkpoints")])
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "the trainer pod failed: no cluster in this test" in str(failure.event_specific_data.error)

    [(namespace, pod)] = cluster.created
    assert namespace == "gan" and cluster.deleted == [pod.metadata.name]
    [container] = pod.spec.containers
    assert container.image == IMAGE
    assert container.command == ["python", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "4",
                                 "--max-restarts", "0", "-m", "gan_assets.trainer.pipes_trainer"]
    assert container.resources.limits == {"nvidia.com/gpu": "4"}
    assert container.resources.requests == {"cpu": "8", "memory": "32Gi"}  # not BestEffort: 2 CPUs, 8 GiB a rank
    assert [(t.key, t.operator, t.effect) for t in pod.spec.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert [(m.name, m.mount_path) for m in container.volume_mounts] == [("runs", str(tmp_path / "store")),
                                                                         ("dshm", "/dev/shm")]
    runs, shm = pod.spec.volumes
    assert runs.persistent_volume_claim.claim_name == "gan-runs" and shm.empty_dir.medium == "Memory"
    assert pod.spec.restart_policy == "Never"
    # the Pipes context the pod receives: the run directory and inputs on the mounted claim
    env_vars = {e.name: e.value for e in container.env}
    extras = decode_param(env_vars["DAGSTER_PIPES_CONTEXT"])["data"]["extras"]
    assert extras["run_dir"].startswith(str(tmp_path / "store" / "experiments" / "tiny" / "runs"))
    assert extras["inputs"] == extras["run_dir"] + "/launch/inputs.npz" and extras["device"] == "auto"
    assert extras["config"]["training"]["batch_size"] == TINY_EXPERIMENT["training"]["batch_size"]
    # the deployment's other device settings travel with it, and the trainer reads them back
    from gan_assets.core.runtime.device import DeviceSettings
    from gan_assets.trainer.pipes_trainer import device_settings

    assert device_settings(extras) == DeviceSettings("auto", deterministic=True, compile="off")


def test_a_cpu_pod_requests_cpu_and_memory_and_no_gpu():
    spec = pod_spec(TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", gpus=0, cpu="4", memory="8Gi",
                               node_selector={"pool": "cpu"}))
    resources = spec["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "4", "memory": "8Gi"}, "requests": {"cpu": "4", "memory": "8Gi"}}
    assert spec["node_selector"] == {"pool": "cpu"}


def test_requests_default_per_rank_and_never_exceed_the_limits():
    gpu_pod = pod_spec(TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", gpus=2))
    # the GPUs only as a limit: Kubernetes takes an extended resource's request from its limit
    assert gpu_pod["containers"][0]["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"},
                                                     "limits": {"nvidia.com/gpu": "2"}}
    cpu_pod = pod_spec(TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", gpus=0))
    assert cpu_pod["containers"][0]["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"}}
    burstable = pod_spec(TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", gpus=1, cpu="8",
                                    cpu_request="1500m", memory_request="4Gi"))
    assert burstable["containers"][0]["resources"] == {"requests": {"cpu": "1500m", "memory": "4Gi"},
                                                       "limits": {"nvidia.com/gpu": "1", "cpu": "8"}}
    with pytest.raises(ValueError, match="memory_request 64Gi exceeds the memory limit 32Gi"):
        pod_spec(TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", memory="32Gi", memory_request="64Gi"))


def test_the_gpu_taint_is_tolerated_only_by_a_gpu_pod():
    own = {"key": "pool", "operator": "Equal", "value": "training", "effect": "NoSchedule"}
    assert "tolerations" not in pod_spec(TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", gpus=0))
    assert pod_spec(TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", gpus=0,
                               tolerations=[own]))["tolerations"] == [own]
    assert pod_spec(TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", gpus=1,
                               tolerations=[own]))["tolerations"] == [own, GPU_TOLERATION]
    assert pod_spec(TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", gpus=1,
                               tolerations=[GPU_TOLERATION]))["tolerations"] == [GPU_TOLERATION]  # not twice


def test_the_pod_trains_on_its_own_device(monkeypatch):
    sent = []
    monkeypatch.setattr(dagster_k8s.PipesK8sClient, "run", lambda self, **kwargs: sent.append(kwargs["extras"]))
    extras = {"device": "cpu", "run_dir": "/data/run"}  # the Dagster process's device, as train_elsewhere sends it
    for device in ("auto", "cuda"):
        run_in_pod(None, TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", device=device), ["python"], extras)
    assert [e["device"] for e in sent] == ["auto", "cuda"] and sent[0]["run_dir"] == "/data/run"
    assert extras["device"] == "cpu"  # the caller's extras are left as they were
    with pytest.raises(ValueError, match="trainer pod: device 'gpu' .* GAN_K8S_DEVICE"):
        run_in_pod(None, TrainerPod(image=IMAGE, volume_claim="c", mount_path="/data", device="gpu"), ["python"], extras)


def test_the_pod_device_is_its_own_setting_not_gan_device():
    def pod_device(env):
        return build_k8s_definitions({"GAN_STORAGE_ROOT": "/data", **env}).resources["trainer_launch"].pod.device

    assert pod_device({"GAN_DEVICE": "cpu"}) == "auto"
    assert pod_device({"GAN_DEVICE": "cpu", "GAN_K8S_DEVICE": "cuda"}) == "cuda"
    assert pod_device({"GAN_K8S_DEVICE": ""}) == "auto"


def test_k8s_mode_without_a_pod_names_what_is_missing():
    with pytest.raises(ValueError, match="needs its `pod` .* see pipelines/k8s.py"):
        run_in_pod(None, None, ["python"], {})
