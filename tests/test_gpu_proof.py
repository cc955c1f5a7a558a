"""benchmarks/gpu_proof.py, the one-card proof of the CUDA path, run on the CPU so it cannot rot between cards:
every variant of its training matrix trains, stays finite and leaves each gradient in its weight's layout."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_proof  # noqa: E402


def test_the_proof_script_trains_every_variant_and_writes_its_json(tmp_path):
    out = tmp_path / "proof.json"
    assert gpu_proof.main(["--device", "cpu", "--only", "environment,matrix", "--steps", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())["sections"]
    assert report["environment"]["device"] == "cpu"
    assert set(report["matrix"]) == set(gpu_proof.MATRIX)
    for name, run in report["matrix"].items():
        assert run["finite"] and run["gradient_layouts_match"] and run["checkpoints"] == 2, name
