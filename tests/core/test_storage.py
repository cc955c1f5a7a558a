"""Stored files: every unreadable one is refused with an error that names it; temps of killed writes are swept."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from gan_assets.core.storage import (
    StoredFileError,
    atomic_path,
    load_weights,
    read_json,
    read_parquet,
    remove_stale_temps,
    save_weights,
    write_json_atomic,
)
from gan_assets.core.training.checkpoints import read_training_state


class Planted:
    def __reduce__(self):  # unpickling this would run a command
        return (os.system, ("touch planted-ran",))


@pytest.mark.parametrize("reader, content, message", [
    (lambda p: load_weights(nn.Linear(2, 2), p), b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}",
     "is not a readable safetensors file"),
    (read_json, b'{"checkpoints": [', "is not valid JSON"),
    (read_parquet, b"PAR1 definitely not parquet", "is not a readable Parquet file"),
    (read_training_state, b"PK\x03\x04 truncated zip", "is not a readable training-state file"),
])
def test_a_corrupted_file_is_named(tmp_path: Path, reader, content, message):
    path = tmp_path / "stored.bin"
    path.write_bytes(content)
    with pytest.raises(StoredFileError, match=message) as caught:
        reader(path)
    assert str(path) in str(caught.value)


READERS = [read_json, read_parquet, lambda p: load_weights(nn.Linear(2, 2), p), read_training_state]


@pytest.mark.parametrize("reader", READERS)
def test_what_is_not_a_stored_file_is_named_and_a_fifo_never_opened(tmp_path: Path, reader):
    os.mkfifo(tmp_path / "fifo")  # opening it would wait for a writer forever
    with pytest.raises(StoredFileError, match=r"fifo is not a regular file \(a FIFO\)"):
        reader(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    with pytest.raises(StoredFileError, match=r"folder is not a regular file \(a folder\)"):
        reader(tmp_path / "folder")
    with pytest.raises(StoredFileError, match="missing does not exist"):
        reader(tmp_path / "missing")


def test_a_truncated_file_is_named_truncated(tmp_path: Path):
    write_json_atomic({"checkpoints": [1, 2, 3]}, tmp_path / "whole.json")
    (tmp_path / "cut.json").write_bytes((tmp_path / "whole.json").read_bytes()[:-3])
    with pytest.raises(StoredFileError, match="cut.json is not valid JSON .*: the file is truncated or corrupted"):
        read_json(tmp_path / "cut.json")


def test_a_planted_pickle_is_refused_and_never_runs(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "step_000010.state.pt"
    torch.save({"step": 10, "payload": Planted()}, path)  # a real torch file whose pickle calls os.system
    with pytest.raises(StoredFileError, match="could run code") as caught:
        read_training_state(path)
    assert str(path) in str(caught.value) and "weights_only=False" not in str(caught.value)
    assert not (tmp_path / "planted-ran").exists()


def test_weights_of_another_network_are_named(tmp_path: Path):
    save_weights(nn.Linear(3, 3), tmp_path / "w.safetensors")
    with pytest.raises(StoredFileError, match=r"w.safetensors does not hold weights of this network"):
        load_weights(nn.Linear(2, 2), tmp_path / "w.safetensors")


def test_temps_of_killed_writers_are_swept_and_live_ones_kept(tmp_path: Path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".scores.parquet.{dead_pid}.abc123.tmp").write_bytes(b"half")
    (tmp_path / f".scores.parquet.{os.getppid()}.def456.tmp").write_bytes(b"a live writer's")
    with atomic_path(tmp_path / "scores.parquet") as tmp:
        tmp.write_bytes(b"ours, in progress")
        assert [p.name for p in remove_stale_temps(tmp_path)] == [f".scores.parquet.{dead_pid}.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".scores.parquet.{os.getppid()}.def456.tmp",
                                                         "scores.parquet"]


def test_atomic_json_replaces_whole_files(tmp_path: Path):
    write_json_atomic({"a": 1}, tmp_path / "m.json")
    write_json_atomic({"b": 2}, tmp_path / "m.json")
    assert read_json(tmp_path / "m.json") == {"b": 2} and [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_every_experiment_path_is_spelled_in_one_function(tmp_path):
    """`<root>/experiments/<key>/...` is built by `experiment_path` alone: no other module joins that folder."""
    import re

    from gan_assets.core.storage import ExperimentKeyError, experiment_path

    assert experiment_path(tmp_path, "tiny", "runs", "abc") == tmp_path / "experiments" / "tiny" / "runs" / "abc"
    assert experiment_path(tmp_path, None, "leaderboard") == tmp_path / "experiments" / "_all" / "leaderboard"
    with pytest.raises(ExperimentKeyError, match="is not allowed"):
        experiment_path(tmp_path, "../elsewhere")
    root = Path(__file__).resolve().parents[2]
    joins = re.compile(r"""["']experiments["']\s*(/|,\s*(folder|key|check_experiment_key))""")
    spelled = [str(path.relative_to(root)) for folder in ("gan_assets", "pipelines")
               for path in (root / folder).rglob("*.py") if joins.search(path.read_text())]
    # sample_export is the one exception: it imports nothing of this project (tests/core/export/test_export.py)
    assert spelled == ["gan_assets/core/storage.py", "pipelines/cli/sample_export.py"]
