"""Where things live: the asset cache, the repository's recipes and configs, run folders."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent  # the checkout (hfrepro is installed editable by scripts/setup.sh)
RECIPES_DIR = REPO_DIR / "recipes"
CONFIGS_DIR = RECIPES_DIR / "configs"
DATA_CARDS_DIR = REPO_DIR / "data_cards"


def home() -> Path:
    """The asset cache: $HFREPRO_HOME, default ~/.cache/hfrepro."""
    return Path(os.environ.get("HFREPRO_HOME") or Path.home() / ".cache" / "hfrepro").expanduser()


def sources_dir() -> Path:
    return home() / "sources"


def models_dir() -> Path:
    return home() / "models"


def datasets_dir() -> Path:
    return home() / "datasets"
