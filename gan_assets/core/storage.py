"""Files a crash cannot corrupt, and the hashes that say a file is the one that was written.

Every write goes to a temp file beside its target, is fsynced, renamed over the target, and the
directory is fsynced so the rename itself survives a power cut: a reader sees the old file or the new
one, never half of either. A temp file carries its writer's pid (`.<name>.<pid>.*.tmp`), so the temps of
writes killed mid-way are told apart from live ones and swept by `remove_stale_temps`. Weights go to
safetensors (no pickle: loading one cannot run code).

Every reader here names the file it could not read, so a corrupted file says which one it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from gan_assets.core.config import not_a_regular_file
from gan_assets.core.runtime.faults import crash_point

TEMP_SUFFIX = ".tmp"
# A partition key names a folder under the storage root: letters, digits, '-', '_', '.', not starting with '.'.
EXPERIMENT_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
UNPARTITIONED = "_all"  # the folder of assets that span every experiment (the leaderboard)


class ExperimentKeyError(ValueError):
    """A partition key that cannot name an experiment folder (path separators, '..', hidden names)."""


def check_experiment_key(key: str) -> str:
    if not isinstance(key, str) or not EXPERIMENT_KEY.fullmatch(key):
        raise ExperimentKeyError(
            f"experiment key {key!r} is not allowed: use letters, digits, '-', '_' and '.', starting with a letter "
            "or digit (it names the experiment's folder under the storage root, so no '/', '..' or hidden names)")
    return key


def experiment_path(root: str | Path, key: str | None, *parts: str) -> Path:
    """The one spelling of a path under the storage root: `<root>/experiments/<key>/<parts...>` (an asset's file,
    a run directory), the key checked first; key None: the unpartitioned assets' folder `_all`."""
    folder = UNPARTITIONED if key is None else check_experiment_key(key)
    return Path(root).joinpath("experiments", folder, *parts)


class StoredFileError(RuntimeError):
    """A stored file is missing, unreadable, or not the file that was recorded: the message says which."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; when the block succeeds, fsync it and rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600: the renamed file should read like any other
        crash_point("atomic_write")
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_bytes_atomic(data: bytes, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_json_atomic(payload: Any, path: Path) -> Path:
    return write_bytes_atomic(json.dumps(payload, indent=2, sort_keys=True).encode(), path)


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def readable_file(path: Path) -> Path:
    """`path`, if it is a regular file this process may read; else a StoredFileError saying what it is instead
    (missing, a folder, a FIFO: never opened, as reading one would wait forever, unreadable)."""
    problem = not_a_regular_file(path)
    if problem:
        raise StoredFileError(f"{path} {problem}")
    if not os.access(path, os.R_OK):
        raise StoredFileError(f"{path} cannot be read: permission denied")
    return Path(path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(readable_file(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StoredFileError(f"{path} is not valid JSON ({err}): the file is truncated or corrupted") from None


def read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(readable_file(path))
    except (pa.ArrowException, OSError) as err:
        raise StoredFileError(f"{path} is not a readable Parquet file ({err}): the file is truncated or "
                              "corrupted") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(readable_file(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None, what_to_do: str) -> None:
    """Refuse a file whose bytes are not the ones recorded (`expected` None: nothing was recorded)."""
    try:
        readable_file(path)
    except StoredFileError as err:
        raise StoredFileError(f"{err}; {what_to_do}") from None
    if expected is not None and (actual := file_sha256(path)) != expected:
        raise StoredFileError(f"{path} has sha256 {actual[:12]}…, not the {expected[:12]}… recorded when it was "
                              f"written: it was replaced or corrupted; {what_to_do}")


def save_weights(module: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> Path:
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_weights(path: Path) -> dict:
    try:
        return load_file(str(readable_file(path)))
    except (SafetensorError, OSError, ValueError) as err:
        raise StoredFileError(f"{path} is not a readable safetensors file ({err}): the file is corrupted") from None


def load_weights(module: nn.Module, path: Path) -> nn.Module:
    tensors = read_weights(path)
    if "reference" in tensors and getattr(module, "reference", False) is None:
        # the fixed reference batch (and its classes) travels with the weights
        module.set_reference(tensors["reference"], tensors.get("reference_labels"))
    try:
        module.load_state_dict(tensors)
    except RuntimeError as err:
        raise StoredFileError(f"{path} does not hold weights of this network ({err})") from None
    return module


def remove_stale_temps(directory: Path) -> list[Path]:
    """Delete the temp files in `directory` whose writer process is gone (killed mid-write)."""
    removed = []
    for tmp in Path(directory).glob(f".*{TEMP_SUFFIX}") if Path(directory).is_dir() else ():
        if abandoned(tmp.name):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def abandoned(name: str) -> bool:
    """Whether the temp file or folder `name` (`.<target>.<pid>.<random>tmp`) was left by a process that is gone."""
    pid = _writer_pid(name)
    return pid is not None and pid != os.getpid() and not _process_exists(pid)


def _writer_pid(name: str) -> int | None:
    parts = name.split(".")  # "", <target name parts…>, <pid>, <random>tmp
    return int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
