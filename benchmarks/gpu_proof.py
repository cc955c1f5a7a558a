"""The CUDA path, proven on one card (sized for under five minutes): one JSON document of what ran and what it measured.

Run:  benchmarks/gpu_proof.sh [OUT.json]     (on a machine with a CUDA GPU and the venv installed)
      .venv/bin/python benchmarks/gpu_proof.py --device cpu --only matrix,resume   (the same checks on a CPU)

Sections (`--only` picks some; each runs even when an earlier one failed, and records its error):
- environment: card, compute capability, memory, torch/CUDA/cuDNN versions, what the bf16 checks say;
- cuda_tests: the suite's `cuda` tests (`pytest -m cuda`), which the CPU suite skips;
- matrix: short trainings of every player and game variant on the device, each with the CUDA sync-debug mode on
  (host syncs per step counted) and a gradient-layout check after one more step (every gradient in its weight's
  strides: what CUDA's fused Adam requires);
- resume: a run split by a resume against an uninterrupted one, with deterministic kernels on and off, in one
  process and across processes; a CPU checkpoint resumed on the card and a card's checkpoint resumed on the CPU;
- nccl: one NCCL rank training through the data-parallel code, and `gan_checkpoints` launched through Dagster
  Pipes by `torchrun --nproc-per-node 1`, after the whole graph (evaluator, scores, gallery) ran on the device;
- likelihood: each likelihood family (VAE, FVBN, Real NVP) trained for a few steps;
- bench: `bench_canonical.py` at 32x32 and 64x64x3 (deterministic, autotuned, and CUDA graphs), and a profile of
  our step (device kernels per step).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from gan_assets.core.config import parse_experiment  # noqa: E402
from gan_assets.core.data.sources.mixtures import mixture_modes  # noqa: E402
from gan_assets.core.runtime.device import DeviceSettings, bf16_is_fast, prepare_device  # noqa: E402
from gan_assets.core.training.likelihood import train_family_run  # noqa: E402
from gan_assets.core.training.loop import STEP_FUNCTIONS  # noqa: E402
from gan_assets.core.training.manifest import ModeCentres  # noqa: E402
from gan_assets.core.training.run import RunInputs, _device_data, _fresh_state, train_run  # noqa: E402

SECTIONS = ("environment", "cuda_tests", "matrix", "resume", "nccl", "likelihood", "bench")
BASE = {"reference_batch": {"size": 16}, "model": {"z_dim": 16, "g_width": 16, "d_width": 16},
        "training": {"steps": 40, "batch_size": 32, "checkpoint_every": 20, "log_every": 10}, "gallery": {"grid_size": 4}}
# name → overrides of BASE (and the data's shape): every player and game variant the trainer has
MATRIX = {
    "batch_norm": {},
    "reference_norm": {"model": {"norm": "reference"}},
    "virtual_norm": {"model": {"norm": "virtual"}},
    "conditional_acgan": {"model": {"conditional": True, "auxiliary_classifier": True}},
    "simultaneous": {"training": {"update": "simultaneous"}},
    "d_steps_2": {"training": {"d_steps": 2}},
    "rmsprop": {"training": {"optimizer": "rmsprop"}},
    "mnist_28x28": {"dataset": {"image_size": 28}},
    "rgb_64x64_fp32": {"dataset": {"image_size": 64, "channels": 3}, "training": {"precision": "fp32"}},
    "ring8": {"dataset": {"source": "ring8"}},
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def merged(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def experiment(overrides: dict, steps: int):
    return experiment_from(merged(BASE, overrides), steps)


def experiment_from(raw: dict, steps: int):
    raw = copy.deepcopy(raw)
    raw["training"]["steps"] = steps
    raw["training"]["checkpoint_every"] = max(1, steps // 2)
    raw["training"]["log_every"] = max(1, steps // 4)
    return parse_experiment(raw)


def inputs_for(config) -> RunInputs:
    """Random uint8 images of the config's shape (or ring8 points), labels mod 10, a reference batch and z."""
    rng = np.random.default_rng(0)
    size, z_dim = config.reference_batch.size, config.model.z_dim
    reference_z = rng.standard_normal((size, z_dim)).astype(np.float32)
    if config.dataset.source == "ring8":
        centers, std = mixture_modes("ring8")
        labels = np.arange(512) % len(centers)
        points = (centers.numpy()[labels] + std * rng.standard_normal((512, 2))).astype(np.float32)
        return RunInputs(images=points, labels=labels, num_classes=len(centers), reference_images=points[:size],
                         reference_labels=labels[:size], reference_z=reference_z,
                         modes=ModeCentres(tuple(tuple(c) for c in centers.tolist()), std))
    side, channels = config.dataset.image_size, config.dataset.channels
    images = rng.integers(0, 256, (512, channels, side, side), dtype=np.uint8)
    labels = np.arange(512) % 10
    return RunInputs(images=images, labels=labels, num_classes=10, reference_images=images[:size],
                     reference_labels=labels[:size], reference_z=reference_z)


@contextlib.contextmanager
def sync_debug(device: torch.device):
    """CUDA's sync-debug mode ("warn"): every host synchronisation is a warning, counted here."""
    if device.type != "cuda":
        yield []
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield caught
        finally:
            torch.cuda.set_sync_debug_mode("default")


# ------------------------------------------------------------------------------------------------- sections


def environment(device: torch.device, args) -> dict:
    facts = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
             "cudnn": torch.backends.cudnn.version(), "device": str(device), "bf16_is_fast": bf16_is_fast(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts |= {"card": props.name, "capability": list(torch.cuda.get_device_capability(device)),
                  "memory_gib": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
                  "is_bf16_supported": torch.cuda.is_bf16_supported(),
                  "is_bf16_supported_without_emulation": torch.cuda.is_bf16_supported(including_emulation=False),
                  "nvidia_smi": _command(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                          "--format=csv,noheader"])}
    return facts


def _command(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unavailable: {err}"


def cuda_tests(device: torch.device, args) -> dict:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests"],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    lines = result.stdout.strip().splitlines()
    return {"returncode": result.returncode, "summary": lines[-1] if lines else "",
            "failures": [line for line in lines if line.startswith(("FAILED", "ERROR"))][:20],
            "seconds": round(time.perf_counter() - started, 1)}


def matrix(device: torch.device, args) -> dict:
    return {name: _train_variant(name, overrides, device, args) for name, overrides in MATRIX.items()}


def _train_variant(name: str, overrides: dict, device: torch.device, args) -> dict:
    log(f"matrix: {name}")
    config = experiment(overrides, args.steps)
    inputs = inputs_for(config)
    with tempfile.TemporaryDirectory() as run_dir, sync_debug(device) as syncs:
        started = time.perf_counter()
        manifest = train_run(config, inputs, Path(run_dir), device=DeviceSettings(str(device)), log=lambda m: None)
        seconds = time.perf_counter() - started
        history = manifest.history_frame()
    losses = history[["loss_d", "loss_g"]].to_numpy()
    return {"steps": args.steps, "seconds": round(seconds, 2), "finite": bool(np.isfinite(losses).all()),
            "last": {k: round(float(history[k].iloc[-1]), 4) for k in ("loss_d", "loss_g", "d_x", "d_g_z")},
            "host_syncs": len(syncs), "log_windows": len(history), "checkpoints": len(manifest.checkpoints),
            "gradient_layouts_match": _gradient_layouts_match(config, inputs, device)}


def _gradient_layouts_match(config, inputs: RunInputs, device: torch.device) -> bool:
    """One more step on a fresh state: every gradient has its parameter's strides."""
    state = _fresh_state(config, inputs, device)
    STEP_FUNCTIONS[config.training.update](state, _device_data(inputs, device), config.training)
    return all(p.grad is None or p.grad.stride() == p.stride()
               for player in (state.generator, state.discriminator) for p in player.parameters())


def resume(device: torch.device, args) -> dict:
    out = {}
    for deterministic in (True, False):
        settings = DeviceSettings(str(device), deterministic=deterministic)
        key = "deterministic" if deterministic else "autotuned"
        out[f"{key}_in_process"] = _split_run_matches(settings, args, across_processes=False)
        out[f"{key}_across_processes"] = _split_run_matches(settings, args, across_processes=True)
    if device.type == "cuda":
        out["cpu_checkpoint_resumed_on_cuda"] = _cross_device(DeviceSettings("cpu"), DeviceSettings(str(device)), args)
        out["cuda_checkpoint_resumed_on_cpu"] = _cross_device(DeviceSettings(str(device)), DeviceSettings("cpu"), args)
    return out


def _split_run_matches(settings: DeviceSettings, args, across_processes: bool) -> dict:
    config, half = experiment({}, args.steps), experiment({}, args.steps // 2)
    inputs = inputs_for(config)
    with tempfile.TemporaryDirectory() as tmp:
        whole = train_run(config, inputs, Path(tmp) / "whole", device=settings, log=lambda m: None)
        train_run(half, inputs, Path(tmp) / "split", device=settings, log=lambda m: None)
        if across_processes:
            _resume_in_subprocess(config, inputs, Path(tmp), settings)
            resumed = json.loads((Path(tmp) / "resumed.json").read_text())["generator_sha256"]
        else:
            resumed = train_run(config, inputs, Path(tmp) / "split", device=settings,
                                log=lambda m: None).latest.generator_sha256
    return {"bit_identical": resumed == whole.latest.generator_sha256, "steps": args.steps}


def _resume_in_subprocess(config, inputs: RunInputs, tmp: Path, settings: DeviceSettings) -> None:
    np.savez(tmp / "inputs.npz", images=inputs.images, labels=inputs.labels, reference_images=inputs.reference_images,
             reference_labels=inputs.reference_labels, reference_z=inputs.reference_z)
    (tmp / "config.json").write_text(json.dumps(config.model_dump(mode="json")))
    code = f"""
import json, sys, numpy as np
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
from gan_assets.core.config import ExperimentConfig
from gan_assets.core.runtime.device import DeviceSettings
from gan_assets.core.training.run import RunInputs, train_run
tmp = Path({str(tmp)!r}); a = np.load(tmp / "inputs.npz")
inputs = RunInputs(images=a["images"], labels=a["labels"], num_classes=10, reference_images=a["reference_images"],
                   reference_labels=a["reference_labels"], reference_z=a["reference_z"])
config = ExperimentConfig.model_validate(json.loads((tmp / "config.json").read_text()))
manifest = train_run(config, inputs, tmp / "split", device=DeviceSettings({settings.name!r},
                     deterministic={settings.deterministic!r}), log=lambda m: None)
(tmp / "resumed.json").write_text(json.dumps({{"generator_sha256": manifest.latest.generator_sha256}}))
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _cross_device(first: DeviceSettings, then: DeviceSettings, args) -> dict:
    config, half = experiment({}, args.steps), experiment({}, args.steps // 2)
    inputs = inputs_for(config)
    with tempfile.TemporaryDirectory() as tmp:
        train_run(half, inputs, Path(tmp), device=first, log=lambda m: None)
        manifest = train_run(config, inputs, Path(tmp), device=then, log=lambda m: None)
        history = manifest.history_frame()
    return {"steps": [e.step for e in manifest.checkpoints], "finite": bool(np.isfinite(
        history[["loss_d", "loss_g"]].to_numpy()).all()), "manifest_device": manifest.device}


def nccl(device: torch.device, args) -> dict:
    return {"one_rank": _one_nccl_rank(device, args), "torchrun_through_pipes": _graph_through_pipes(device)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_nccl_rank(device: torch.device, args) -> dict:
    """The data-parallel path with a world of one: process group (NCCL on a GPU), gradient all-reduce, buffers."""
    from gan_assets.core.training.distributed import DataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), RANK="0", WORLD_SIZE="1",
                      LOCAL_RANK="0")
    parallel = DataParallel(0, 1, 0)
    parallel.start(device)
    try:
        config = experiment({}, args.steps)
        with tempfile.TemporaryDirectory() as tmp:
            manifest = train_run(config, inputs_for(config), Path(tmp), device=DeviceSettings(str(device)),
                                 log=lambda m: None, parallel=parallel)
        backend = torch.distributed.get_backend()
        return {"backend": backend, "checkpoints": len(manifest.checkpoints),
                "replicas_identical": parallel.replicas_identical()}
    finally:
        parallel.stop()
        for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
            os.environ.pop(name, None)


def _graph_through_pipes(device: torch.device) -> dict:
    """Every asset of a tiny experiment on the device in process, then `gan_checkpoints` of a second one trained by
    `torchrun --nproc-per-node 1` through Dagster Pipes."""
    import dagster as dg

    from gan_assets.assets.experiment_config import experiments_partitions
    from pipelines.definitions import build_definitions

    tiny = {"seed": 0, "reference_batch": {"size": 16}, "model": {"z_dim": 16, "g_width": 8, "d_width": 8},
            "training": {"steps": 20, "batch_size": 16, "checkpoint_every": 10, "log_every": 5},
            "evaluator": {"epochs": 1}, "evaluation": {"num_samples": 64}, "gallery": {"grid_size": 4}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "experiments").mkdir()
        for key, seed in (("in_process", 0), ("torchrun", 1)):
            (root / "experiments" / f"{key}.yaml").write_text(yaml.safe_dump({**tiny, "seed": seed}))
        os.environ["DAGSTER_HOME"] = str(root)
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(experiments_partitions.name, ["in_process", "torchrun"])
        defs = build_definitions(root / "store", root / "experiments", device=str(device))
        job = defs.resolve_implicit_global_asset_job_def()
        stages = [spec.key for spec in defs.resolve_all_asset_specs()  # one experiment's stages, not the leaderboard
                  if spec.partitions_def is not None and spec.key.path[0] != "config"]
        whole = job.execute_in_process(instance=instance, partition_key="in_process", asset_selection=stages,
                                       raise_on_error=False)
        launch = {"resources": {"trainer_launch": {"config": {"mode": "torchrun", "nproc_per_node": 1}}}}
        upstream = [dg.AssetKey("dataset"), dg.AssetKey("reference_batch"), dg.AssetKey("gan_checkpoints")]
        pipes = job.execute_in_process(instance=instance, partition_key="torchrun", run_config=launch,
                                       asset_selection=upstream, raise_on_error=False)
        return {"graph_in_process": whole.success, "assets": len(whole.get_asset_materialization_events()),
                "torchrun_nproc_1": pipes.success, "errors": [str(e.event_specific_data.error)[:500]
                                                              for r in (whole, pipes) for e in r.all_events
                                                              if e.event_type_value == "STEP_FAILURE"]}


def likelihood(device: torch.device, args) -> dict:
    out = {}
    for family in ("vae", "fvbn", "real_nvp"):
        log(f"likelihood: {family}")
        raw = {**BASE, "model": {"family": family}, "dataset": {"image_size": 16}}
        config = experiment_from(raw, max(4, args.steps // 4))
        with tempfile.TemporaryDirectory() as tmp:
            manifest = train_family_run(config, inputs_for(config), Path(tmp), device=DeviceSettings(str(device)),
                                        log=lambda m: None)
            history = manifest.history_frame()
        out[family] = {"checkpoints": len(manifest.checkpoints), "finite": bool(np.isfinite(
            history.drop(columns="step").to_numpy()).all())}
    return out


def bench(device: torch.device, args) -> dict:
    runs = {"deterministic": {}, "autotuned": {"GAN_DETERMINISTIC": "0"},
            "cuda_graphs": {"GAN_DETERMINISTIC": "0", "GAN_COMPILE": "reduce-overhead"}}
    out = {}
    for name, env in runs.items():
        configs = "all" if name != "cuda_graphs" else "32x32x1-b64-w32"
        result = subprocess.run([sys.executable, "benchmarks/bench_canonical.py", "--device", device.type, "--config",
                                 configs, "--rounds", str(args.bench_rounds), "--window-seconds", "1.5"],
                                cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env})
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        out[name] = lines or {"returncode": result.returncode, "stderr": result.stderr[-2000:]}
    out["profile_32x32"] = _kernels_per_step(device)
    return out


def _kernels_per_step(device: torch.device, steps: int = 10) -> dict:
    """Device kernels (CPU ops on a CPU) launched per training step of ours at the default experiment's shape."""
    from torch.profiler import ProfilerActivity, profile

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_canonical import CONFIGS, DEFAULT_CONFIG, Ours, experiment_for, random_images, run_inputs

    bench_config = CONFIGS[DEFAULT_CONFIG]
    config = experiment_for(bench_config)
    ours = Ours(config, run_inputs(config, *random_images(bench_config)), device)
    ours.run(3)  # warm-up: cuDNN's choices and the caching allocator settle
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        ours.run(steps)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    events = prof.events()
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    ops = [e for e in events if e.device_type == torch.autograd.DeviceType.CPU and e.name.startswith("aten::")]
    return {"steps": steps, "kernels_per_step": len(kernels) / steps, "aten_ops_per_step": len(ops) / steps}


RUNNERS: dict[str, Callable] = {"environment": environment, "cuda_tests": cuda_tests, "matrix": matrix,
                                "resume": resume, "nccl": nccl, "likelihood": likelihood, "bench": bench}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--steps", type=int, default=40, help="training steps of each matrix and resume run")
    parser.add_argument("--bench-rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu_proof.json")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}: choose from {', '.join(SECTIONS)}")
    device = prepare_device(DeviceSettings(args.device))
    report: dict = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]), "sections": {}}
    started = time.perf_counter()
    for name in [s for s in SECTIONS if s in args.only.split(",")]:
        log(f"== {name}")
        t0 = time.perf_counter()
        try:
            report["sections"][name] = RUNNERS[name](device, args)
        except Exception as err:  # one failed section must not lose the others' figures
            report["sections"][name] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
        report["sections"][name + "_seconds"] = round(time.perf_counter() - t0, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))  # after each section: a cut-off run keeps what it had
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return 0 if not any(isinstance(v, dict) and "error" in v for v in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
