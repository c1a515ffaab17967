"""Check every model folder of a run as a Hugging Face user would meet it: its card (license, base_model Hub id,
datasets, pipeline_tag, a true library_name, a model-index of held-out numbers the run measured), parsed by
huggingface_hub's ModelCard.load, and the folder loaded offline the way the card says.

    python scripts/check_cards.py runs/reproduce              # a main-job folder: every stage's models
    python scripts/check_cards.py runs/clm --no-load          # the cards only (fast)
    python scripts/check_cards.py runs/reproduce --json out.json

Prints a Markdown table, one row per model folder; exit 1 if any folder has a problem, 2 if none was found.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a check never downloads: what loads here loads offline

from hfrepro.hubcheck import check_tree, to_json  # noqa: E402
from hfrepro.report import md_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", help="a run folder, or a folder of runs (e.g. the main job's --out)")
    ap.add_argument("--no-load", action="store_true", help="check the cards only; do not load the models")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    args = ap.parse_args(argv)
    root = Path(args.root)
    if not root.is_dir():
        print(f"error: {root} is not a folder", file=sys.stderr)
        return 2
    checks = check_tree(root, load=not args.no_load)
    if not checks:
        print(f"error: no model folder (README.md + config.json or adapter_config.json) under {root}", file=sys.stderr)
        return 2
    rows = [c.row(root) for c in checks]
    print(md_table(rows))
    bad = [c for c in checks if c.problems]
    print(f"\n{len(checks) - len(bad)} of {len(checks)} model folder(s) pass.")
    if args.json:
        Path(args.json).write_text(to_json(checks, root), encoding="utf-8")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
