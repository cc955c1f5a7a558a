"""`python -m pipelines.cli.gallery [experiments/<name>.yaml | <name>] [--open]`: where an experiment's HTML
gallery is (what `make gallery` prints), from the latest materialization of `sample_gallery`."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from gan_assets.core.storage import ExperimentKeyError, StoredFileError, experiment_path, read_json


def gallery_page(storage_root: Path, key: str) -> Path:
    stored = experiment_path(storage_root, key, "sample_gallery.json")
    if not stored.is_file():
        raise FileNotFoundError(f"no gallery for {key!r} yet ({stored} is missing): `make run EXPERIMENT=...` "
                                "or materialize sample_gallery in `make ui` first")
    page = Path(read_json(stored).get("html", ""))
    if not page.is_file():
        raise FileNotFoundError(f"{stored} names no HTML page that exists ({page}): the gallery was drawn by an "
                                "older version; materialize sample_gallery again")
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", default="experiments/digits-dcgan.yaml",
                        help="an experiment file or its name (default: the default experiment)")
    parser.add_argument("--open", action="store_true", help="also open it in a browser, where there is one")
    args = parser.parse_args(argv)
    from pipelines.definitions import STORAGE_ROOT

    try:
        page = gallery_page(STORAGE_ROOT, Path(args.experiment).stem)
    except (FileNotFoundError, ExperimentKeyError, StoredFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(page)
    if args.open and not webbrowser.open(page.as_uri()):
        print("no browser to open it with here: open the path above", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
