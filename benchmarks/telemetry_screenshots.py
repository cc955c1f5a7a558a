"""The README's pictures of live telemetry, taken for real: `dagster dev` trains the default experiment (shortened) while
headless Chromium photographs `gan_checkpoints`' asset page mid-run, then TensorBoard serves the run's event files.

    .venv/bin/python benchmarks/telemetry_screenshots.py [--steps 3000] [--out docs]

Writes docs/ui-live-training.png (the asset's events while it trains), docs/ui-live-plots.png (its metadata plotted
over those events) and docs/tensorboard-live.png. It
reuses the UI test's Dagster and Chromium drivers (tests/ui/test_ui.py); Debian's `chromium` must be installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from tests.ui.test_ui import (  # noqa: E402 - the UI test's drivers, after the project root is importable
    ADD_PARTITION,
    LAUNCH_RUN,
    Dagster,
    chromium,
    free_port,
    kill_group,
    wait_for_server,
)

PARTITION = "digits-dcgan-live"


def start_dagster(root: Path, experiment: dict) -> tuple[subprocess.Popen, Dagster]:
    home, experiments = root / "dagster_home", root / "experiments"
    home.mkdir()
    experiments.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False},
                                                      "run_queue": {"max_concurrent_runs": 1}}))
    (experiments / f"{PARTITION}.yaml").write_text(yaml.safe_dump(experiment))
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1", "GAN_DEVICE": "cpu",
           "GAN_STORAGE_ROOT": str(root / "store"), "GAN_EXPERIMENTS_DIR": str(experiments), "PYTHONUNBUFFERED": "1"}
    log = root / "dagster-dev.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port),
                                 "-w", "workspace.yaml"], cwd=PROJECT_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = Dagster(f"http://127.0.0.1:{port}", log, root / "store", home)
    server.repository = wait_for_server(proc, server)
    return proc, server


def launch(server: Dagster) -> str:
    server.graphql(ADD_PARTITION, repositorySelector=server.repository, partitionsDefName="experiments",
                   partitionKey=PARTITION)
    launched = server.graphql(LAUNCH_RUN, executionParams={
        "selector": {**server.repository, "jobName": "experiment"},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": PARTITION}]}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def wait_for_observations(home: Path, count: int, timeout: float = 900) -> None:
    """Until `gan_checkpoints` has `count` live reports (read from the instance the webserver uses)."""
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    instance = dg.DagsterInstance.get()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.fetch_observations(dg.AssetKey("gan_checkpoints"), limit=1000).records
        if len(records) >= count:
            return
        time.sleep(5)
    raise TimeoutError(f"fewer than {count} live reports of gan_checkpoints after {timeout}s")


def screenshot(page, url: str, out: Path, settle: float, width: int = 1400, height: int = 1000) -> None:
    page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
    page.call("Page.navigate", url=url)
    time.sleep(settle)  # the pages load their data after the document: let them paint
    out.write_bytes(base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"]))
    print(f"wrote {out}")


CLICK = """
((label) => {
  const button = [...document.querySelectorAll('button')].find((b) => b.textContent.trim() === label);
  if (button) button.click();
  return !!button;
})(%s)
"""


def plots_shot(page, asset_url: str, out: Path) -> None:
    """The asset's overview, its metadata as plots over events (observations included): the curves as they grow."""
    page.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False)
    page.call("Page.navigate", url=asset_url)
    page.wait_for(CLICK % json.dumps("Plots"), "the metadata's Plots button")
    time.sleep(2)
    page.wait_for(CLICK % json.dumps("Events"), "the plots' Events axis")
    time.sleep(6)
    page.evaluate("(() => { const h = [...document.querySelectorAll('*')].find((e) => e.textContent.trim() === 'loss_d'"
                  " && e.children.length === 0); if (h) h.scrollIntoView({block: 'start'}); })()")
    time.sleep(2)
    out.write_bytes(base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"]))
    print(f"wrote {out}")


def tensorboard_shot(logdir: Path, page, out: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(logdir),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(60):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5).read()
                break
            except OSError:
                time.sleep(1)
        screenshot(page, f"http://127.0.0.1:{port}/?tagFilter=train%7Csamples&smoothing=0#timeseries", out, settle=15,
                   width=1600)
    finally:
        kill_group(proc, grace=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--reports", type=int, default=8, help="live reports to wait for before the UI picture")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs")
    args = parser.parse_args()
    experiment = yaml.safe_load((PROJECT_ROOT / "experiments" / "digits-dcgan.yaml").read_text())
    experiment["training"].update(steps=args.steps, checkpoint_every=args.steps // 3)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        proc, server = start_dagster(root, experiment)
        try:
            server.graphql("mutation { setNuxSeen }")
            run_id = launch(server)
            print(f"run {run_id}: training {PARTITION} for {args.steps} steps")
            wait_for_observations(server.home, args.reports)
            with chromium(root / "profile") as page:
                page.call("Page.enable")
                asset = f"{server.url}/assets/gan_checkpoints?partition={PARTITION}"
                screenshot(page, f"{asset}&view=events", args.out / "ui-live-training.png", settle=8)
                plots_shot(page, asset, args.out / "ui-live-plots.png")
                tensorboard_shot(root / "store" / "experiments", page, args.out / "tensorboard-live.png")
        finally:
            kill_group(proc)


if __name__ == "__main__":
    main()
