"""Images the Dagster UI shows in place, without a click.

The asset page renders a markdown metadata value inline only when it is under 1,000 characters; a
data-URI image of a real grid is ten times that, so it hides behind "[Show Markdown]". The webserver
does serve files under the local compute-log directory (`/logs/<key…>/<extension>`, the route behind
"download logs"), so a PNG written there can be shown by a short markdown image. Names carry the
image's hash: a browser never shows a stale grid from its cache. Other compute-log managers (cloud
storage) have no such route; there the value is None and the data-URI entries remain.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager  # no public export

from gan_assets.core.storage import write_bytes_atomic

NAMESPACE = "gan_gallery"


def served_image(instance: dg.DagsterInstance, png: bytes, partition: str, name: str, alt: str) -> str | None:
    """Markdown that shows `png` inline on the asset page, or None where the instance cannot serve it."""
    manager = instance.compute_log_manager
    if not isinstance(manager, LocalComputeLogManager):
        return None
    key = [NAMESPACE, partition, f"{name}-{hashlib.sha256(png).hexdigest()[:16]}"]
    path = Path(manager.get_captured_local_path(key, "png"))
    if not path.is_file():
        write_bytes_atomic(png, path)
    return f"![{alt}](/logs/{'/'.join(key)}/png)"
