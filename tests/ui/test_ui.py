"""The UI, tested for real: `dagster dev`, a run launched through GraphQL, and the page in Chromium.

One `dagster dev` (webserver, daemon, code server) serves a throw-away `DAGSTER_HOME` on a free
loopback port, over a temp experiments dir holding the tiny experiment. The tests register the
`tiny` partition and launch the `experiment` job through the GraphQL API, check the
materialization metadata through GraphQL, then one headless Chromium (Debian's `chromium`, driven
over the DevTools protocol with the stdlib websocket client below) at 1280x1000 visits every asset
page of the graph and the `gan` group's lineage (`ui_tour`), and the tests assert on what it saw:
the best grid and the score chart shown without a click, the grade, grid and chart in the first
screen and above the tables, the best grid's row per class, the `gallery_page` link serving the
HTML gallery, unique node labels in the lineage, and nothing cut off on the right. The screenshots
are saved in the tour's temp dir; `UPDATE_UI_SCREENSHOT=1` also copies sample_gallery's to
`docs/ui-gallery.png` (benchmarks/ui_screenshots.py takes the same pictures of your own instance).

Skipped when Chromium is missing, unless `REQUIRE_UI_TEST=1` (set by `.ci/run`) makes that a failure.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gan_assets.assets.experiment_config import CONFIG_SECTIONS
from tests.conftest import TINY_EXPERIMENT

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PARTITION = "tiny"
# The tiny experiment, conditional with a reference batch of 4 per class (the best grid has a row per class), scored
# with the default metrics (the asset pages carry the entries, and the long keys, of a real run's).
UI_EXPERIMENT = {**TINY_EXPERIMENT, "model": {**TINY_EXPERIMENT["model"], "conditional": True},
                 "reference_batch": {"size": 40}, "evaluation": {"num_samples": 64}}
PARTITIONS_DEF = "experiments"
JOB = "experiment"
PNG_DATA_URI = "data:image/png;base64,"
SERVER_START_TIMEOUT = 120
RUN_TIMEOUT = 240
PAGE_TIMEOUT = 60
VIEWPORT = (1280, 1000)  # width, height: a laptop's browser window; "the first screen" is its height
GROUP = "gan"
GRAPH_ASSETS = ("dataset", "reference_batch", "evaluator", "gan_checkpoints", "checkpoint_scores",
                "exported_generator", "sample_gallery")
# The inline images each asset page must show (markdown images served from /logs/gan_gallery/<partition>/).
INLINE = {"gan_checkpoints": ["loss_curves"], "checkpoint_scores": ["score_curves"],
          "sample_gallery": ["best_grid", "progress", "score_curves"]}
GRID_PADDING = 2  # torchvision's make_grid, as gan_assets/core/png.py's grid_array calls it

_missing_chromium = not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK))
if _missing_chromium and os.environ.get("REQUIRE_UI_TEST") == "1":
    raise RuntimeError(f"REQUIRE_UI_TEST=1 but {CHROMIUM} is missing: `apt-get install chromium`")

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(_missing_chromium, reason=f"{CHROMIUM} not found (Debian: apt-get install chromium)"),
]


# --------------------------------------------------------------------------- dagster dev + GraphQL


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM then SIGKILL the whole process group (dagster dev, webserver, daemon, code server, runs)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            # The leader is gone; make sure no child of the group outlived it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


class Dagster:
    def __init__(self, url: str, log: Path, storage_root: Path, home: Path):
        self.url, self.log, self.storage_root, self.home = url, log, storage_root, home

    def graphql(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise AssertionError(f"GraphQL errors: {json.dumps(answer['errors'], indent=1)}")
        return answer["data"]


WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation { name repositories { name jobs { name } } }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def wait_for_server(proc: subprocess.Popen, server: Dagster) -> dict:
    """Wait until the webserver answers and the code location loaded; return the repository selector."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {proc.returncode}:\n{log_tail(server.log)}")
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=5) as response:
                json.load(response)
            entries = server.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            time.sleep(1)
            continue
        for entry in entries:
            location = entry["locationOrLoadError"]
            if entry["loadStatus"] != "LOADED" or location is None:
                continue
            if location["__typename"] != "RepositoryLocation":
                pytest.fail(f"code location {entry['name']} failed to load: {location.get('message')}")
            for repository in location["repositories"]:
                if JOB in {job["name"] for job in repository["jobs"]}:
                    return {"repositoryLocationName": location["name"], "repositoryName": repository["name"]}
        time.sleep(1)
    pytest.fail(f"dagster dev not ready after {SERVER_START_TIMEOUT}s:\n{log_tail(server.log)}")


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    home, experiments = root / "dagster_home", root / "experiments"
    home.mkdir()
    experiments.mkdir()
    # One run at a time: if automation also picks up the new partition, runs queue instead of
    # writing the same partition's files concurrently.
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "telemetry": {"enabled": False},
        "run_queue": {"max_concurrent_runs": 1},
    }))
    (experiments / f"{PARTITION}.yaml").write_text(yaml.safe_dump(UI_EXPERIMENT))
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1",
           "GAN_STORAGE_ROOT": str(root / "store"), "GAN_EXPERIMENTS_DIR": str(experiments),
           "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}
    log = root / "dagster-dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        server = Dagster(f"http://127.0.0.1:{port}", log, root / "store", home)
        server.repository = wait_for_server(proc, server)
        yield server
    finally:
        kill_group(proc)


ADD_PARTITION = """
mutation($repositorySelector: RepositorySelector!, $partitionsDefName: String!, $partitionKey: String!) {
  addDynamicPartition(repositorySelector: $repositorySelector, partitionsDefName: $partitionsDefName,
                      partitionKey: $partitionKey) {
    __typename
    ... on AddDynamicPartitionSuccess { partitionKey }
    ... on DuplicateDynamicPartitionError { partitionName }
    ... on Error { message }
  }
}
"""

LAUNCH_RUN = """
mutation($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

RUN_STATUS = """
query($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
    ... on Error { message }
  }
}
"""

RUN_ERRORS = """
query($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      eventConnection(afterCursor: null) {
        events {
          __typename
          ... on MessageEvent { message stepKey }
          ... on ExecutionStepFailureEvent { error { message errorChain { error { message stack } } } }
          ... on EngineEvent { error { message stack } }
        }
      }
    }
  }
}
"""


def run_failure_report(server: Dagster, run_id: str) -> str:
    events = server.graphql(RUN_ERRORS, runId=run_id)["runOrError"]["eventConnection"]["events"]
    lines = []
    for event in events:
        error = event.get("error")
        if error or event["__typename"] in ("RunFailureEvent", "ExecutionStepFailureEvent"):
            lines.append(f"[{event.get('stepKey')}] {event['__typename']}: {event.get('message')}")
        if error:
            lines.append(error["message"])
            for link in error.get("errorChain") or []:
                lines.append(link["error"]["message"] + "".join(link["error"]["stack"][-3:]))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def tiny_run(dagster_dev: Dagster) -> str:
    """Register the partition and materialize the whole graph for it; the run's id once it succeeded."""
    server = dagster_dev
    added = server.graphql(ADD_PARTITION, repositorySelector=server.repository,
                           partitionsDefName=PARTITIONS_DEF, partitionKey=PARTITION)["addDynamicPartition"]
    # The experiment-files sensor may have registered it first; both outcomes leave it registered.
    assert added["__typename"] in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"), added
    return launch_and_wait(server, {"selector": {**server.repository, "jobName": JOB},
                                    "executionMetadata": {"tags": [{"key": "dagster/partition", "value": PARTITION}]}})


@pytest.fixture(scope="module")
def leaderboard_run(dagster_dev: Dagster, tiny_run: str) -> str:
    """The unpartitioned leaderboard over the scored tiny partition, as `make run` brings it up to date."""
    return launch_and_wait(dagster_dev, {"selector": {**dagster_dev.repository, "jobName": "__ASSET_JOB",
                                                      "assetSelection": [{"path": ["leaderboard"]}]}})


def launch_and_wait(server: Dagster, execution_params: dict) -> str:
    """Launch a run through GraphQL; its id once it succeeded."""
    launched = server.graphql(LAUNCH_RUN, executionParams=execution_params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline, status = time.monotonic() + RUN_TIMEOUT, None
    while time.monotonic() < deadline:
        status = server.graphql(RUN_STATUS, runId=run_id)["runOrError"]["status"]
        if status == "SUCCESS":
            return run_id
        if status in ("FAILURE", "CANCELED"):
            pytest.fail(f"run {run_id} ended {status}:\n{run_failure_report(server, run_id)}")
        time.sleep(2)
    pytest.fail(f"run {run_id} still {status} after {RUN_TIMEOUT}s:\n{log_tail(server.log)}")


LATEST_METADATA = """
query($path: [String!]!, $partitions: [String!]) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: $partitions, limit: 1) {
        runId
        partition
        metadataEntries {
          __typename
          label
          ... on MarkdownMetadataEntry { mdStr }
          ... on TextMetadataEntry { text }
          ... on FloatMetadataEntry { floatValue }
          ... on IntMetadataEntry { intValue }
          ... on PathMetadataEntry { path }
          ... on JsonMetadataEntry { jsonString }
        }
      }
    }
  }
}
"""


def latest_metadata(server: Dagster, asset: str, partition: str | None = PARTITION) -> tuple[str, dict]:
    """The run id and the metadata entries (by label) of the asset's latest materialization (of `partition`)."""
    answer = server.graphql(LATEST_METADATA, path=[asset], partitions=partition and [partition])["assetOrError"]
    assert answer["__typename"] == "Asset", answer
    [materialization] = answer["assetMaterializations"]
    assert materialization["partition"] == partition
    return materialization["runId"], {entry["label"]: entry for entry in materialization["metadataEntries"]}


def checkpoint_names() -> set[str]:
    training = TINY_EXPERIMENT["training"]
    every = training["checkpoint_every"]
    return {f"step_{step:06d}" for step in range(every, training["steps"] + 1, every)}


def decode_png_data_uri(text: str) -> Image.Image:
    start = text.index(PNG_DATA_URI) + len(PNG_DATA_URI)
    end = start
    while end < len(text) and (text[end].isalnum() or text[end] in "+/="):
        end += 1
    image = Image.open(io.BytesIO(base64.b64decode(text[start:end], validate=True)))
    assert image.format == "PNG"
    image.load()  # decodes the pixels: a truncated PNG raises here
    return image


def test_materialization_metadata_through_graphql(dagster_dev, tiny_run):
    gallery_run, gallery = latest_metadata(dagster_dev, "sample_gallery")
    scores_run, scores = latest_metadata(dagster_dev, "checkpoint_scores")
    # Normally both come from `tiny_run`; automation may rematerialize the partition later, so only
    # require that a run recorded them.
    assert gallery_run and scores_run

    assert gallery["grid"]["__typename"] == "MarkdownMetadataEntry"
    grid = decode_png_data_uri(gallery["grid"]["mdStr"])
    assert min(grid.size) > 0
    best = gallery["best_checkpoint"]["text"]
    assert best in checkpoint_names()
    assert Path(gallery["best_grid"]["path"]).name == f"{best}.png"

    assert scores["best_checkpoint"]["text"] == best
    assert scores["best_fd"]["__typename"] == "FloatMetadataEntry"
    assert isinstance(scores["best_fd"]["floatValue"], float) and scores["best_fd"]["floatValue"] >= 0


# --------------------------------------------------------------------------- Chromium over CDP


class DevTools:
    """Just enough of a websocket client (RFC 6455, text frames) to speak the DevTools protocol."""

    def __init__(self, ws_url: str, timeout: float = 30):
        url = urllib.parse.urlsplit(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.split(b"\r\n")[0].split()[1] == b"101", head
        self.next_id = 0

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("DevTools websocket closed")
        self.buffer += chunk

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _send(self, payload: bytes, opcode: int = 0x1) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _message(self) -> str:
        parts = []
        while True:
            first, second = self._read(2)
            opcode, n = first & 0x0F, second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)  # the server never masks
            if opcode == 0x8:
                raise ConnectionError("DevTools websocket closed")
            if opcode == 0x9:
                self._send(payload, opcode=0xA)
                continue
            if opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if first & 0x80:
                    return b"".join(parts).decode()

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}).encode())
        while True:  # events (no id) are ignored
            message = json.loads(self._message())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = PAGE_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.5)
        text = self.evaluate("document.body ? document.body.innerText.slice(0, 3000) : ''")
        pytest.fail(f"timed out after {timeout}s waiting for {what}; page text:\n{text}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@contextlib.contextmanager
def chromium(profile: Path):
    """Headless Chromium with DevTools on a loopback port; yields a client attached to its page."""
    profile.mkdir()
    log = profile.parent / "chromium.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
             f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "about:blank"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    client = None
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes the port it picked here
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start (exit {proc.poll()}):\n{log_tail(log)}")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        pages = []
        while not pages:
            if time.monotonic() > deadline:
                pytest.fail(f"Chromium opened no page:\n{log_tail(log)}")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                pages = [target for target in json.load(response) if target["type"] == "page"]
            time.sleep(0.2)
        client = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield client
    finally:
        if client is not None:
            client.close()
        kill_group(proc, grace=5)


# The asset page's metadata table shows markdown under 1,000 characters in place; the inline entries are
# markdown images served from the compute-log directory (gan_assets/resources/ui_images.py), so no click is needed.
FIND_INLINE = """
((names) => {
  const found = {};
  for (const name of names) {
    const img = [...document.querySelectorAll('img')].find((el) => el.src.includes('/logs/gan_gallery/' + name));
    if (!img || !img.complete || img.naturalWidth === 0) return null;
    const box = img.getBoundingClientRect();
    found[name] = {alt: img.alt, src: img.src, width: img.naturalWidth, height: img.naturalHeight,
                   rendered: box.width > 0 && box.height > 0, top: box.top + window.scrollY};
  }
  return found;
})(%s)
"""


def served_file(home: Path, src: str) -> Path:
    """The file behind a `/logs/<key…>/png` URL: `<key…>.png` under the instance's compute-log directory."""
    *key, extension = urllib.parse.urlsplit(src).path.removeprefix("/logs/").split("/")
    return home / "storage" / Path(*key[:-1]) / f"{key[-1]}.{extension}"


def asset_url(server: Dagster, asset: str, partition: str = PARTITION) -> str:
    return f"{server.url}/assets/{asset}?view=partitions&partition={urllib.parse.quote(partition)}"


def group_lineage_url(server: Dagster, group: str = GROUP) -> str:
    """The group's lineage graph: the catalog's group link (`/locations/<repository>@<location>/asset-groups/<group>`)."""
    repository = f"{server.repository['repositoryName']}@{server.repository['repositoryLocationName']}"
    return f"{server.url}/locations/{urllib.parse.quote(repository, safe='@')}/asset-groups/{urllib.parse.quote(group)}"


def set_viewport(page: DevTools, width: int = VIEWPORT[0], height: int = VIEWPORT[1]) -> None:
    page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)


def capture(page: DevTools, path: Path) -> Path:
    """The first screen (the viewport, unscrolled) as a PNG."""
    path.write_bytes(base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"]))
    return path


# The asset page's latest materialization has rendered: its metadata table has rows and every image in the main
# content has loaded (a page still fetching shows a spinner and no table).
METADATA_RENDERED = """
(() => {
  const table = document.querySelector('table[class*="AssetEventMetadataEntriesTable"]');
  if (!table || table.querySelectorAll('tr').length < 2) return false;
  return [...document.querySelectorAll('img')].every((img) => img.complete && img.naturalWidth > 0);
})()
"""


def open_asset_page(page: DevTools, server: Dagster, asset: str, inline: list[str],
                    partition: str = PARTITION) -> dict:
    """Navigate to the asset's partition page; once its metadata and the `inline` images have rendered, the images."""
    page.call("Page.navigate", url=asset_url(server, asset, partition))
    page.wait_for(METADATA_RENDERED, f"the metadata of the {asset} page")
    if not inline:
        return {}
    return page.wait_for(FIND_INLINE % json.dumps([f"{partition}/{name}-" for name in inline]),
                         f"the inline images {inline} on the {asset} page (no click)")


# What a viewer of the asset page sees without scrolling, and what is cut off on the right. Boxes are viewport
# coordinates of the unscrolled page (the page scrolls inside its main content, never the window).
#  clipped: content that does not show in full. An <img>, a table inside the metadata, or a piece of the metadata's
#    text whose right edge is past what the viewport and its overflow-clipping containers show (a container that
#    scrolls counts: the page hides its scrollbars, and nobody scrolls a metadata table sideways to find a path's
#    end), and any metadata element that hides its own overflow (scrollWidth > clientWidth, e.g. an ellipsis). The
#    metadata table's own box is not judged: its last column is empty padding.
#  rows: each metadata entry's row box, by label; verdict_grade: the bold grade word in the `verdict` entry;
#  tables: tables inside the metadata (Dagster table metadata, markdown tables); links: every <a>; images: the
#  inline images (/logs/gan_gallery/…) by name.
MEASURE = """
((grade) => {
  const W = window.innerWidth;
  const box = (el) => { const b = el.getBoundingClientRect();
    return {left: b.left, right: b.right, top: b.top, bottom: b.bottom, width: b.width, height: b.height}; };
  const main = document.querySelector('[class*="MainContent_mainContent"]') || document.body;
  const meta = main.querySelector('table[class*="AssetEventMetadataEntriesTable"]');
  const labelOf = (el) => { const tr = el.closest('table[class*="AssetEventMetadataEntriesTable"] > tbody > tr');
    return tr && tr.children[0] ? tr.children[0].textContent.trim() : null; };
  const shownRight = (el) => {  // the right edge of what the viewport and el's clipping containers show
    let right = W;
    for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') {
        right = Math.min(right, a.getBoundingClientRect().left + a.clientLeft + a.clientWidth);
      }
    }
    return right;
  };
  const clipped = [], seen = new Set();
  const report = (what, el, right, detail) => {
    const shown = shownRight(el);
    if (right <= shown + 0.5) return;
    const entry = labelOf(el), key = what + '|' + entry;
    if (seen.has(key)) return;  // one report per entry and kind
    seen.add(key);
    clipped.push({what, entry, right: Math.round(right), shown_up_to: Math.round(shown), ...detail});
  };
  for (const el of main.querySelectorAll('img')) {
    const b = box(el);
    if (b.width > 0) report('img', el, b.right, {src: el.src});
  }
  for (const el of main.querySelectorAll('table')) {
    const b = box(el);
    if (el !== meta && b.width > 0) report('table', el, b.right, {});
  }
  if (meta) {
    const walker = document.createTreeWalker(meta, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      const right = Math.max(0, ...[...range.getClientRects()].map((r) => r.right));
      report('text', node.parentElement, right, {text: node.textContent.trim().slice(0, 80)});
    }
    for (const el of meta.querySelectorAll('*')) {
      const overflow = getComputedStyle(el).overflowX;
      if ((overflow === 'hidden' || overflow === 'clip') && el.scrollWidth > el.clientWidth + 1) {
        clipped.push({what: 'overflow ' + overflow, entry: labelOf(el), scrollWidth: el.scrollWidth,
                      clientWidth: el.clientWidth, text: el.textContent.trim().slice(0, 80)});
      }
    }
  }
  const rows = {};
  if (meta) for (const tr of meta.querySelectorAll(':scope > tbody > tr')) {
    if (tr.children[0]) rows[tr.children[0].textContent.trim()] = box(tr);
  }
  let verdict_grade = null;
  const verdict = meta && [...meta.querySelectorAll(':scope > tbody > tr')]
    .find((tr) => tr.children[0] && tr.children[0].textContent.trim() === 'verdict');
  if (verdict && grade) {
    const bold = [...verdict.querySelectorAll('strong, b')].find((el) => el.textContent.trim() === grade);
    if (bold) verdict_grade = {...box(bold), visible: getComputedStyle(bold).visibility === 'visible'};
  }
  const tables = meta ? [...meta.querySelectorAll('table')].map((t) => ({entry: labelOf(t), ...box(t)})) : [];
  const links = [...main.querySelectorAll('a[href]')].map((a) => ({href: a.getAttribute('href'),
                                                                   text: a.textContent.trim(), ...box(a)}));
  const images = {};  // the inline images by name: /logs/gan_gallery/<partition>/<name>-<hash>/png
  for (const img of main.querySelectorAll('img')) {
    const parts = new URL(img.src, location.href).pathname.split('/');
    if (parts[2] === 'gan_gallery') images[parts[parts.length - 2].replace(/-[0-9a-f]+$/, '')] = box(img);
  }
  return {viewport: [W, window.innerHeight], clipped, rows, verdict_grade, tables, links, images};
})(%s)
"""

# The lineage graph's nodes: the group's assets (their boxes) and the assets of other groups they link to (the
# config sources, drawn as small links). Dagster labels each by the last component of its key.
LINEAGE_NODES = """
(() => [...document.querySelectorAll('foreignObject')]
  .map((node) => { const name = node.querySelector('[class*="assetName"]');  // zoomed in, a node shows more
                   return {label: (name || node).textContent.trim(), asset: !!name}; })
  .filter((node) => node.label))()
"""


def open_group_lineage(page: DevTools, server: Dagster, group: str = GROUP, assets: int = 1) -> list[dict]:
    """Navigate to the group's lineage graph; its nodes once `assets` of the group's assets are drawn."""
    page.call("Page.navigate", url=group_lineage_url(server, group))
    expected = json.dumps(assets)
    return page.wait_for(f"(() => {{ const nodes = {LINEAGE_NODES.strip()};"
                         f" return nodes.filter((n) => n.asset).length >= {expected} ? nodes : null; }})()",
                         f"the {group} group's lineage graph")


@pytest.fixture(scope="module")
def ui_tour(dagster_dev, tiny_run, leaderboard_run, tmp_path_factory) -> dict:
    """One Chromium at VIEWPORT visits every asset page of the graph, the leaderboard's latest materialization (its
    Events tab) and the group's lineage: what each showed (MEASURE, the inline images) and its first screen (`shots`,
    in the tour's temp dir)."""
    shots = tmp_path_factory.mktemp("ui-pages")
    grades = {asset: latest_metadata(dagster_dev, asset)[1].get("grade", {}).get("text")
              for asset in ("checkpoint_scores", "sample_gallery")}
    # The "Join the Dagster community" dialog would cover the page; dismiss it as its Skip button does.
    dagster_dev.graphql("mutation { setNuxSeen }")
    tour = {"shots": {}, "pages": {}, "inline": {}, "grades": grades}
    with chromium(shots / "profile") as page:
        page.call("Page.enable")
        set_viewport(page)
        for asset in GRAPH_ASSETS:
            started = time.monotonic()
            tour["inline"][asset] = open_asset_page(page, dagster_dev, asset, INLINE.get(asset, []))
            time.sleep(0.5)  # let the images paint and the table settle before measuring and the picture
            tour["pages"][asset] = page.evaluate(MEASURE % json.dumps(grades.get(asset)))
            tour["shots"][asset] = capture(page, shots / f"ui-{asset}.png")
            print(f"{asset}: {time.monotonic() - started:.1f}s, {tour['shots'][asset]}")
        page.call("Page.navigate", url=f"{dagster_dev.url}/assets/leaderboard?view=events")
        page.wait_for(METADATA_RENDERED, "the leaderboard's metadata")
        time.sleep(0.5)
        tour["pages"]["leaderboard"] = page.evaluate(MEASURE % json.dumps(None))
        tour["shots"]["leaderboard"] = capture(page, shots / "ui-leaderboard.png")
        tour["lineage"] = open_group_lineage(page, dagster_dev, GROUP, assets=len(GRAPH_ASSETS))
        time.sleep(0.5)
        tour["shots"]["lineage"] = capture(page, shots / f"ui-lineage-{GROUP}.png")
    return tour


def test_asset_pages_show_the_best_grid_and_score_chart_without_a_click(dagster_dev, ui_tour):
    _, gallery = latest_metadata(dagster_dev, "sample_gallery")
    best = gallery["best_checkpoint"]["text"]
    screenshot = ui_tour["shots"]["sample_gallery"]
    if os.environ.get("UPDATE_UI_SCREENSHOT") == "1":
        target = PROJECT_ROOT / "docs" / "ui-gallery.png"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, target)
    print(f"screenshot: {screenshot}")
    assert Image.open(screenshot).size == VIEWPORT

    home = dagster_dev.home
    shown = ui_tour["inline"]["sample_gallery"]
    for name, image in [*shown.items(), *ui_tour["inline"]["checkpoint_scores"].items()]:
        assert image["rendered"], (name, image)
        assert (image["width"], image["height"]) == Image.open(served_file(home, image["src"])).size
    grid = shown[f"{PARTITION}/best_grid-"]
    assert grid["top"] < VIEWPORT[1]  # in the first screenful, not only somewhere down the page
    assert grid["alt"] == f"best checkpoint {best}"
    assert np.array_equal(np.asarray(Image.open(served_file(home, grid["src"]))),
                          np.asarray(Image.open(gallery["best_grid"]["path"])))  # the very grid the run drew
    assert urllib.parse.urlsplit(grid["src"]).path in gallery["best_grid_inline"]["mdStr"]


def markdown_table_rows(markdown: str) -> int:
    """The body rows of a markdown table (the lines after its header and |---| line)."""
    return len([line for line in markdown.splitlines() if line.strip().startswith("|")][2:])


def test_best_grid_has_one_row_per_class(dagster_dev, ui_tour):
    """The served best grid's rows and columns, from its size: square cells of the images plus make_grid's padding.

    A conditional G's grid has one row per class (gan_assets/core/gallery/grids.py, `grid_inputs`): K rows of
    max(1, min(grid_size, reference z // K)) columns; an unconditional G's is grid_size × grid_size."""
    _, dataset = latest_metadata(dagster_dev, "dataset")
    _, reference = latest_metadata(dagster_dev, "reference_batch")
    _, checkpoints = latest_metadata(dagster_dev, "gan_checkpoints")
    config = json.loads(checkpoints["config"]["jsonString"])
    classes = markdown_table_rows(dataset["class_histogram"]["mdStr"])
    assert classes == len(json.loads(reference["classes"]["text"])) > 1  # the digits' 10
    _channels, height, width = json.loads(dataset["shape"]["text"])
    assert height == width
    cell = height + GRID_PADDING
    grid = Image.open(served_file(dagster_dev.home, ui_tour["inline"]["sample_gallery"][f"{PARTITION}/best_grid-"]["src"]))
    assert (grid.width - GRID_PADDING) % cell == 0 and (grid.height - GRID_PADDING) % cell == 0, (grid.size, cell)
    rows, columns = (grid.height - GRID_PADDING) // cell, (grid.width - GRID_PADDING) // cell
    grid_size = config["gallery"]["grid_size"]
    if config["model"]["conditional"]:
        expected = (classes, max(1, min(grid_size, reference["dagster/row_count"]["intValue"] // classes)))
    else:  # no class to ask G for: the per-class rows are the HTML gallery's
        expected = (grid_size, grid_size)
    assert (rows, columns) == expected, (
        f"best grid {grid.size}: {rows} rows × {columns} columns of {cell}px cells; expected {expected} "
        f"(conditional={config['model']['conditional']}, {classes} classes, grid_size {grid_size})")


def test_gallery_page_link_downloads_the_html_gallery(dagster_dev, ui_tour):
    _, gallery = latest_metadata(dagster_dev, "sample_gallery")
    assert "gallery_page" in gallery, f"no gallery_page entry; entries: {list(gallery)}"
    links = [link for link in ui_tour["pages"]["sample_gallery"]["links"]
             if f"/logs/gan_gallery/{PARTITION}/gallery-" in link["href"]]
    assert len(links) == 1, ui_tour["pages"]["sample_gallery"]["links"]
    path = urllib.parse.urlsplit(links[0]["href"]).path
    assert re.fullmatch(rf"/logs/gan_gallery/{re.escape(PARTITION)}/gallery-[0-9a-f]{{16}}/html", path), path
    assert f"]({path})" in gallery["gallery_page"]["mdStr"]
    with urllib.request.urlopen(urllib.parse.urljoin(dagster_dev.url, links[0]["href"]), timeout=30) as response:
        assert response.status == 200
        served = response.read()
    assert served == Path(gallery["gallery_html"]["path"]).read_bytes()


def test_group_lineage_labels_are_unique(ui_tour):
    """Dagster labels a node by its key's last component: the config sources (`config/<section>_yaml`) must not
    read `dataset` or `evaluator` beside the stages of those names."""
    assert Image.open(ui_tour["shots"]["lineage"]).size == VIEWPORT
    nodes = ui_tour["lineage"]
    labels = [node["label"] for node in nodes]
    assert {node["label"] for node in nodes if node["asset"]} == set(GRAPH_ASSETS), nodes
    assert labels.count("dataset") == 1 and labels.count("evaluator") == 1, labels
    assert not sorted({label for label in labels if labels.count(label) > 1}), labels
    # The group's links to other groups' assets: the config sources, and the leaderboard where it is in view.
    linked = [node["label"] for node in nodes if not node["asset"]]
    assert not set(linked) & set(CONFIG_SECTIONS), f"config sources labelled by the bare section: {linked}"
    sources = [label for label in linked if label.endswith("_yaml")]
    assert sources and {label.removesuffix("_yaml") for label in sources} <= set(CONFIG_SECTIONS), linked


def test_verdict_grid_and_chart_in_the_first_screen(ui_tour):
    """The grade, the best grid and the score chart without scrolling, and none of them below a table."""
    width, height = VIEWPORT
    problems = []
    for asset in ("sample_gallery", "checkpoint_scores"):
        page, grade = ui_tour["pages"][asset], ui_tour["grades"][asset]
        assert grade in ("good", "fair", "poor"), (asset, grade)
        shown = page["verdict_grade"]
        if shown is None:
            problems.append(f"{asset}: the verdict does not show the grade {grade!r} in bold")
        elif not (shown["visible"] and 0 <= shown["top"] and shown["bottom"] <= height and shown["right"] <= width):
            problems.append(f"{asset}: the verdict's grade {grade!r} is not in the first {width}x{height} screen: {shown}")
        table_tops = [row["top"] for label, row in page["rows"].items() if label.startswith("scores")]
        table_tops += [table["top"] for table in page["tables"]]
        first_table = min(table_tops, default=float("inf"))
        names = ["best_grid", "score_curves"] if asset == "sample_gallery" else ["score_curves"]
        for name in names:
            box = page["images"][name]
            whole = name == "best_grid"  # every class row on the first screen; the chart starts on it
            if not (box["top"] >= 0 and (box["bottom"] if whole else box["top"]) <= height and box["right"] <= width):
                problems.append(f"{asset}: {name} is not {'fully ' if whole else ''}in the first {width}x{height} "
                                f"screen: {box}")
            if box["bottom"] > first_table:
                problems.append(f"{asset}: {name} (bottom {box['bottom']:.0f}) is below a table (top {first_table:.0f})")
        if asset == "checkpoint_scores" and "scores" not in page["rows"]:
            problems.append(f"{asset}: no `scores` table entry; rows: {list(page['rows'])}")
    assert not problems, "\n".join(problems)


def machine_identifiers(entries: dict) -> set[str]:
    """Entries holding one exact string for a program or a copy-paste (file paths, URIs, JSON, hashes): Dagster's UI
    never breaks them, so a deep storage root runs past the edge (the text copies on click). Everything else on a
    page is for reading and must show whole."""
    def identifier(entry: dict) -> bool:
        text = entry.get("text")
        return ("path" in entry or "jsonString" in entry or
                (text is not None and " " not in text and len(text) > 40))
    return {label for label, entry in entries.items() if identifier(entry)}


def test_asset_pages_fit_the_viewport(dagster_dev, ui_tour):
    """At VIEWPORT nothing a reader needs on an asset page is cut off on the right: the pictures, charts and tables
    end within the viewport and no metadata cell hides or scrolls away its prose; the machine identifiers, which may
    run past the edge, come after the verdict, the pictures and the tables."""
    clipped = {}
    for asset in (*GRAPH_ASSETS, "leaderboard"):
        assert Image.open(ui_tour["shots"][asset]).size == VIEWPORT
        page = ui_tour["pages"][asset]
        assert tuple(page["viewport"]) == VIEWPORT
        entries = latest_metadata(dagster_dev, asset, None if asset == "leaderboard" else PARTITION)[1]
        identifiers = machine_identifiers(entries)
        cut = [c for c in page["clipped"] if c["entry"] not in identifiers]
        if cut:
            clipped[asset] = cut
        labels = list(entries)  # the verdict, pictures and tables before any identifier
        first_identifier = min((labels.index(label) for label in identifiers), default=len(labels))
        lead = [label for label in labels if label in ("verdict", "ranking") or label.endswith("_inline")
                or label.startswith(("scores", "leaderboard"))]
        assert all(labels.index(label) < first_identifier for label in lead), (asset, labels)
    assert not clipped, f"clipped at {VIEWPORT[0]}px wide:\n{json.dumps(clipped, indent=1)}"


def test_the_leaderboard_opens_with_the_ranking_and_the_verdict(dagster_dev, leaderboard_run, ui_tour):
    _, board = latest_metadata(dagster_dev, "leaderboard", None)
    assert list(board)[:2] == ["ranking", "leaderboard"]
    grade = ui_tour["grades"]["checkpoint_scores"]
    assert board["ranking"]["mdStr"].startswith(f"1. **{PARTITION}**: {grade}, FD ")
    rows = ui_tour["pages"]["leaderboard"]["rows"]
    assert rows["ranking"]["top"] < rows["leaderboard"]["top"] < VIEWPORT[1]  # the answer on the first screen
