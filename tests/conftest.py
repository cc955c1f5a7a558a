"""Shared test setup: offline, one BLAS and one torch thread, throw-away Dagster home, tiny experiments."""

import os

# scipy's sqrtm can stall with several BLAS threads on small machines; metrics run in tests. torch's
# intra-op threads oversubscribe a busy 2-core machine and collapse (a training test stalled for 25 minutes
# with another CPU-bound process running): the tests' tiny networks run on one thread, in this process and
# in the subprocesses they start (which inherit these variables).
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GAN_TORCH_THREADS"):
    os.environ.setdefault(variable, "1")
# The suite trains on the CPU on every machine, whatever GAN_DEVICE the shell has: a GPU would change numbers the
# tests pin and the speed they were sized for. Tests of the CUDA path opt in (`@pytest.mark.cuda`, device="cuda").
os.environ["GAN_DEVICE"] = "cpu"
# A shell's tracking server never receives the tests' runs: tests that track start their own (tests/mlflow_server.py).
os.environ.pop("MLFLOW_TRACKING_URI", None)

import torch  # noqa: E402

torch.set_num_threads(1)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import yaml  # noqa: E402

from tests.mlflow_server import mlflow_server  # noqa: E402,F401 - the fixture, for every test folder

# Small enough that the whole graph materializes in seconds on two CPU cores.
TINY_EXPERIMENT = {
    "seed": 0,
    "reference_batch": {"size": 16},
    "model": {"z_dim": 16, "g_width": 8, "d_width": 8},
    "training": {"steps": 20, "batch_size": 16, "checkpoint_every": 10, "log_every": 5},
    "evaluator": {"epochs": 1},
    "evaluation": {"num_samples": 64, "metrics": ["fd", "class_coverage", "class_kl", "precision_recall"]},
    "gallery": {"grid_size": 4},
}


# The longest files first: with two workers (`make test`: pytest-xdist, a file at a time), each starts one of them at
# once instead of one worker finishing alone long after the other has run out of files.
LONGEST_FIRST = ("tests/ui/", "tests/pipelines/test_faults.py", "tests/pipelines/automation/test_schedules.py",
                 "tests/resources/test_trainer_launch.py", "tests/core/training/test_distributed.py")


def pytest_collection_modifyitems(config, items):
    """The longest files first; `cuda` tests run only where torch sees a CUDA device."""
    items.sort(key=lambda item: next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
                                     len(LONGEST_FIRST)))  # stable: the rest keep their order
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def dagster_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"
    return home


@pytest.fixture
def experiments_dir(tmp_path) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY_EXPERIMENT))
    return folder


@pytest.fixture
def storage_root(tmp_path) -> Path:
    return tmp_path / "store"


def experiment_instance(experiments_dir: Path, key: str, raw: dict):
    """`raw` written as `experiments_dir/<key>.yaml`, and an ephemeral Dagster instance with `key` registered as an
    experiment partition: what a test needs before it materializes that experiment."""
    import dagster as dg

    from gan_assets.assets.experiment_config import experiments_partitions

    experiments_dir.mkdir(parents=True, exist_ok=True)
    (experiments_dir / f"{key}.yaml").write_text(yaml.safe_dump(raw))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments_partitions.name, [key])
    return instance
