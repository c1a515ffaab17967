"""Rewrite data_cards/<name>.md for every embedded dataset from the built cache (maintainers' tool).

    .venv/bin/python scripts/make_data_cards.py      # after `hfrepro assets build`
"""

from hfrepro import assets
from hfrepro.assets.cards import render
from hfrepro.fsutil import atomic_write_text
from hfrepro.paths import DATA_CARDS_DIR

for a in assets.ASSETS.values():
    if a.kind != "dataset":
        continue
    assets.path(a.name)  # build if needed
    atomic_write_text(DATA_CARDS_DIR / f"{a.name}.md", render(a, assets.read_marker(a)))
    print("wrote", DATA_CARDS_DIR / f"{a.name}.md")
