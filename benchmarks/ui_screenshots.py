"""The docs' pictures of the UI, taken from your own instance: the first screen of three asset pages and the lineage.

    .venv/bin/python benchmarks/ui_screenshots.py --home data/dagster_home --partition digits-dcgan --out docs

Run it after `make run` materialized the partition. It starts `dagster dev -w workspace.yaml` (the project's own
workspace) on a free loopback port with DAGSTER_HOME set to --home (GAN_STORAGE_ROOT and GAN_EXPERIMENTS_DIR as you
have them), marks the "Join the Dagster community" prompt seen, and saves the first screen at 1280x1000 of
sample_gallery's page (docs/ui-sample-gallery.png), checkpoint_scores' (docs/ui-checkpoint-scores.png), the
leaderboard's latest materialization (docs/ui-leaderboard.png) and the gan group's lineage (docs/ui-lineage.png),
then stops dagster dev. It reuses the UI test's Dagster and Chromium drivers
(tests/ui/test_ui.py); Debian's `chromium` must be installed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from tests.ui.test_ui import (  # noqa: E402 - the UI test's drivers, after the project root is importable
    GRAPH_ASSETS,
    GROUP,
    INLINE,
    LATEST_METADATA,
    METADATA_RENDERED,
    VIEWPORT,
    Dagster,
    capture,
    chromium,
    free_port,
    kill_group,
    open_asset_page,
    open_group_lineage,
    set_viewport,
    wait_for_server,
)

PAGES = {"sample_gallery": "ui-sample-gallery.png", "checkpoint_scores": "ui-checkpoint-scores.png"}


def start_dagster(home: Path, log: Path) -> tuple[subprocess.Popen, Dagster]:
    """`dagster dev` over the existing instance at `home`, on a free loopback port; once its code location loaded."""
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port),
                                 "-w", "workspace.yaml"], cwd=PROJECT_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = Dagster(f"http://127.0.0.1:{port}", log, None, home)
    try:
        server.repository = wait_for_server(proc, server)
    except BaseException:  # pytest.fail's Failed included: never leave dagster dev behind
        kill_group(proc)
        raise
    return proc, server


def require_materialized(server: Dagster, partition: str) -> None:
    for asset in PAGES:
        answer = server.graphql(LATEST_METADATA, path=[asset], partitions=[partition])["assetOrError"]
        if answer.get("__typename") != "Asset" or not answer["assetMaterializations"]:
            raise SystemExit(f"{asset} has no materialization of partition {partition!r} in this instance: "
                             f"`make run` it first (or pass --home / --partition)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=PROJECT_ROOT / "data" / "dagster_home",
                        help="the DAGSTER_HOME `make run` used (default: data/dagster_home)")
    parser.add_argument("--partition", default="digits-dcgan", help="the experiment to show (default: digits-dcgan)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs")
    args = parser.parse_args()
    home = args.home.resolve()
    if not (home / "dagster.yaml").is_file() and not (home / "history").is_dir():
        raise SystemExit(f"no Dagster instance at {home}: `make run` first, or pass its --home")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.monotonic()
        proc, server = start_dagster(home, root / "dagster-dev.log")
        try:
            print(f"dagster dev at {server.url} ({time.monotonic() - started:.0f}s)")
            require_materialized(server, args.partition)
            # The "Join the Dagster community" dialog would cover the page; dismiss it as its Skip button does.
            server.graphql("mutation { setNuxSeen }")
            with chromium(root / "profile") as page:
                page.call("Page.enable")
                set_viewport(page, *VIEWPORT)
                for asset, name in PAGES.items():
                    open_asset_page(page, server, asset, INLINE[asset], partition=args.partition)
                    time.sleep(0.5)  # let the images paint
                    print(f"wrote {capture(page, args.out / name)}")
                # the unpartitioned leaderboard's latest materialization (Events: the metadata column is widest there)
                page.call("Page.navigate", url=f"{server.url}/assets/leaderboard?view=events")
                page.wait_for(METADATA_RENDERED, "the leaderboard's metadata")
                time.sleep(0.5)
                print(f"wrote {capture(page, args.out / 'ui-leaderboard.png')}")
                open_group_lineage(page, server, GROUP, assets=len(GRAPH_ASSETS))
                time.sleep(0.5)
                print(f"wrote {capture(page, args.out / 'ui-lineage.png')}")
        finally:
            kill_group(proc)


if __name__ == "__main__":
    main()
