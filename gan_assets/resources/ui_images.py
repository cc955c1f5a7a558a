"""Images the Dagster UI shows in place, without a click.

The asset page renders a markdown metadata value inline only when it is under 1,000 characters; a
data-URI image of a real grid is ten times that, so it hides behind "[Show Markdown]". The webserver
does serve files under the local compute-log directory (`/logs/<key…>/<extension>`, the route behind
"download logs"), so a PNG written there can be shown by a short markdown image. Names carry the
image's hash: a browser never shows a stale grid from its cache. Other compute-log managers (cloud
storage) have no such route; there the value is None and the data-URI entries remain. The HTML gallery is handed
out by the same route (`served_page_link`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager  # no public export

from gan_assets.core.storage import write_bytes_atomic

NAMESPACE = "gan_gallery"


def served_url(instance: dg.DagsterInstance, data: bytes, partition: str, name: str, extension: str) -> str | None:
    """The webserver's URL path of `data` written under the compute-log directory, or None where it cannot serve it."""
    manager = instance.compute_log_manager
    if not isinstance(manager, LocalComputeLogManager):
        return None
    key = [NAMESPACE, partition, f"{name}-{hashlib.sha256(data).hexdigest()[:16]}"]
    path = Path(manager.get_captured_local_path(key, extension))
    if not path.is_file():
        write_bytes_atomic(data, path)
    return f"/logs/{'/'.join(key)}/{extension}"


def served_image(instance: dg.DagsterInstance, png: bytes, partition: str, name: str, alt: str) -> str | None:
    """Markdown that shows `png` inline on the asset page, or None where the instance cannot serve it."""
    url = served_url(instance, png, partition, name, "png")
    return None if url is None else f"![{alt}]({url})"


def served_page_link(instance: dg.DagsterInstance, html: bytes, partition: str, name: str, text: str) -> str | None:
    """Markdown linking to a self-contained HTML page the webserver hands out, or None where it cannot.

    The route sends files as attachments, so the browser saves the page and opens it from disk: that works
    from any machine that reaches the UI, where a server path would have to be copied off by hand."""
    url = served_url(instance, html, partition, name, "html")
    return None if url is None else f"[{text}]({url})"
