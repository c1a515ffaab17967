"""The `hfrepro` command: every recipe under its own name, plus the tools around them.

    hfrepro --help
    hfrepro clm --max_steps 200 --output_dir runs/clm-200      # = python recipes/clm.py ... (same code)
    hfrepro clm --accelerate_config cpu_2proc                  # = accelerate launch --config_file ... recipes/clm.py
    hfrepro assets                                             # embedded models and datasets
    hfrepro reproduce                                          # the main job

Recipes live in `recipes/` (shipped inside the package as `hfrepro.recipes`), so every command works from any
directory. `--help` lists them without importing them: their one-line help is their docstring's first line.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from hfrepro import __version__
from hfrepro.errors import UserError, run_main
from hfrepro.paths import ACCELERATE_DIR, RECIPES_DIR

# Modules with a `register(subparsers)` function, in the order they appear in --help. They import their heavy
# libraries inside the handlers, so `hfrepro --help` stays fast.
COMMAND_MODULES = [
    "hfrepro.assets.cli",
    "hfrepro.embeddings.cli",   # stage 1: hfrepro embeddings {pairs,analogy,similar,...}
    "hfrepro.lm.cli",           # stage 2: hfrepro generate, fill-mask, perplexity, arch
    "hfrepro.seq2seq.cli",      # stage 3: hfrepro translate
    "hfrepro.fewshot.cli",      # stage 6: hfrepro fewshot-tasks
    "hfrepro.finetune.cli",     # stage 7: hfrepro finetune {prepare-data,create,follow,list}, hfrepro chat
    "hfrepro.transformer.cli",  # stage 4: inside the Transformer (hfrepro transformer, hfrepro tokenize)
    "hfrepro.bert.cli",         # stage 5: BERT
    "hfrepro.rlbasics.cli",     # stage 8: RL basics
    "hfrepro.rlhf.cli",         # stage 9: hfrepro prefs
    "hfrepro.chatgpt.cli",      # stage 10: ChatGPT's behaviour
    "hfrepro.hub_cli",          # sharing: hfrepro push
    "hfrepro.reproduce",        # the main job: hfrepro reproduce
]


def recipes() -> dict[str, str]:
    """name -> one-line help, for every recipes/<name>.py (read from the file, not imported)."""
    out = {}
    for f in sorted(RECIPES_DIR.glob("*.py")):
        if f.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(f.read_text(encoding="utf-8"))) or ""
        out[f.stem] = doc.strip().split("\n")[0]
    return out


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its package is not there either
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfrepro",
        description="hfrepro: the road from word2vec to ChatGPT, stage by stage, on the Hugging Face stack.",
        epilog="[recipe] commands run recipes/<name>.py with the same arguments; see `hfrepro <recipe> --help`. "
               "Add --accelerate_config NAME|FILE to run one under `accelerate launch`.")
    parser.add_argument("--version", action="version", version=f"hfrepro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        if _exists(mod):  # a chapter without tool commands has no cli module
            importlib.import_module(mod).register(sub)
    for name, help_ in recipes().items():
        sub.add_parser(name.replace("_", "-"), help=f"[recipe] {help_}", add_help=False)
    return parser


def accelerate_config(name: str) -> Path:
    """A config of recipes/accelerate/ by name (cpu_2proc, multi_gpu, fsdp, deepspeed_zero2, ...) or a file."""
    p = Path(name)
    if p.is_file():
        return p
    p = ACCELERATE_DIR / f"{name}.yaml"
    if p.is_file():
        return p
    have = ", ".join(sorted(f.stem for f in ACCELERATE_DIR.glob("*.yaml")))
    raise UserError(f"unknown accelerate config {name!r}", fix=f"use a file, or one of: {have}")


def run_recipe(name: str, argv: list[str]) -> int:
    """`hfrepro <recipe> ARGS`: the recipe's own `cli`, or `accelerate launch` of its file."""
    if "--accelerate_config" in argv:
        i = argv.index("--accelerate_config")
        if i + 1 >= len(argv):
            raise UserError("--accelerate_config needs a value", fix="a config name or a file")
        cfg = accelerate_config(argv[i + 1])
        rest = argv[:i] + argv[i + 2:]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(cfg),
               str(RECIPES_DIR / f"{name}.py"), *rest]
        return subprocess.call(cmd, env=os.environ.copy())
    module = importlib.import_module(f"hfrepro.recipes.{name}")
    module.cli(argv)
    return 0


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].replace("-", "_") in recipes():  # `hfrepro rl-basics` runs recipes/rl_basics.py
        return run_recipe(argv[0].replace("-", "_"), argv[1:])
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
