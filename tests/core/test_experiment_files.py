"""Hostile experiment files: every way one can fail to read is a ConfigError naming the file (and the line where
YAML gives one), never another exception type, and within bounds of size, depth and alias expansion."""

import os

import pytest

from gan_assets.core.config import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, ConfigError, load_experiment

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]\n" for prev, name in zip("abcde", "bcdef"))

POISONED = {  # file text → what the error says
    "? [a, b]\n: 1\n": "line 1, column 3: a key must be a plain name, not a sequence",
    "? {a: 1}\n: 1\n": "line 1, column 3: a key must be a plain name, not a mapping",
    "seed: " + "[" * 500 + "]" * 500 + "\n": f"nested deeper than {MAX_DEPTH} levels",
    "".join("  " * i + f"k{i}:\n" for i in range(200)): f"line {MAX_DEPTH}, column .*: nested deeper than",
    BOMB: f"more than {MAX_NODES} values once its aliases are expanded",
    "seed: &a [*a]\n": "an alias refers to a value that contains it",
    "seed: 1\n" + "# padding\n" * (MAX_FILE_BYTES // 10 + 1): f"larger than {MAX_FILE_BYTES // 1024} KiB",
    "1: 2\n": "1: Keys should be strings",
    "- seed\n": "the top level must be a mapping of sections, got list",
    "base: &b {steps: 3}\ntraining:\n  <<: *b\n": "line 3, column 3: merge keys .* are not supported",
}


@pytest.mark.parametrize("text", list(POISONED), ids=range(len(POISONED)))
def test_a_poisoned_file_is_a_config_error_naming_the_file(tmp_path, text):
    path = tmp_path / "poisoned.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=POISONED[text]) as caught:
        load_experiment(path)
    assert str(path) in str(caught.value)


def test_what_is_not_a_file_is_named_and_never_opened(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    with pytest.raises(ConfigError, match=r"fifo.yaml is not a regular file \(a FIFO\)"):
        load_experiment(fifo)
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"folder.yaml is not a regular file \(a folder\)"):
        load_experiment(tmp_path / "folder.yaml")
    with pytest.raises(ConfigError, match="missing.yaml does not exist"):
        load_experiment(tmp_path / "missing.yaml")


def test_an_unreadable_file_is_named(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "locked.yaml"
    path.write_text("seed: 1\n")
    path.chmod(0)
    with pytest.raises(ConfigError, match="locked.yaml cannot be read: Permission denied"):
        load_experiment(path)


def test_anchors_and_aliases_within_bounds_still_load(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text("training: &t {steps: 7}\nevaluator: {epochs: 2}\n")
    config = load_experiment(path)
    assert (config.training.steps, config.evaluator.epochs) == (7, 2)
