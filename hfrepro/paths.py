"""Where things live: the recipes and their configs (inside the package), the asset cache, data cards.

`recipes/` and `data_cards/` sit at the top of the checkout, where people look for them; the package reaches
them through the links `hfrepro/recipes` and `hfrepro/data_cards`, so an installed hfrepro carries both and
every command works from any directory.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
RECIPES_DIR = PACKAGE_DIR / "recipes"
CONFIGS_DIR = RECIPES_DIR / "configs"
ACCELERATE_DIR = RECIPES_DIR / "accelerate"
DATA_CARDS_DIR = PACKAGE_DIR / "data_cards"


def home() -> Path:
    """The asset cache: $HFREPRO_HOME, default ~/.cache/hfrepro."""
    return Path(os.environ.get("HFREPRO_HOME") or Path.home() / ".cache" / "hfrepro").expanduser()


def sources_dir() -> Path:
    return home() / "sources"


def models_dir() -> Path:
    return home() / "models"


def datasets_dir() -> Path:
    return home() / "datasets"
