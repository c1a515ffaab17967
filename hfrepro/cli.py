"""The `hfrepro` command: one subcommand per stage tool, plus every recipe under its own name.

    hfrepro --help
    hfrepro assets                     # embedded models and datasets
    hfrepro smoke --max_steps 5        # any recipe: same arguments as `python recipes/smoke.py`

Subcommand modules import their heavy libraries inside the handlers, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import runpy
import sys

from hfrepro.errors import UserError, run_main
from hfrepro.paths import RECIPES_DIR

# Modules with a `register(subparsers)` function, in the order they appear in --help.
COMMAND_MODULES = [
    "hfrepro.assets.cli",
    "hfrepro.reproduce",
]

# Recipes runnable as `hfrepro <name> [args]`: the same script as `python recipes/<name>.py [args]`.
RECIPES = {
    "smoke": "check a setup: a tiny causal-LM training through the shared plumbing (any accelerate config)",
}


def build_parser() -> argparse.ArgumentParser:
    from hfrepro import __version__

    parser = argparse.ArgumentParser(
        prog="hfrepro",
        description="hfrepro: the road from word2vec to ChatGPT, stage by stage, on the Hugging Face stack.",
        epilog="Recipes (arguments: `hfrepro <recipe> --help`): "
               + "; ".join(f"{k}: {v}" for k, v in RECIPES.items()))
    parser.add_argument("--version", action="version", version=f"hfrepro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    for name, help_ in RECIPES.items():
        sub.add_parser(name, help=f"[recipe] {help_}", add_help=False)
    return parser


def run_recipe(name: str, argv: list[str]) -> int:
    script = RECIPES_DIR / f"{name}.py"
    if not script.is_file():
        raise UserError(f"recipe script not found: {script}",
                        fix="hfrepro must be installed from its checkout (pip install -e .)")
    old = sys.argv
    sys.argv = [str(script), *argv]
    try:
        runpy.run_path(str(script), run_name="__hfrepro_recipe__")["main"]()
    finally:
        sys.argv = old
    return 0


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in RECIPES:
        return run_recipe(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args) or 0


def main(argv: list[str] | None = None) -> None:
    run_main(lambda: _main(argv))


if __name__ == "__main__":
    main()
