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
    "hfrepro.embeddings.cli",   # stage 1: hfrepro embeddings {train,pairs,analogy,similar,...}
    "hfrepro.lm.cli",           # stage 2: hfrepro generate, hfrepro arch, hfrepro perplexity
    "hfrepro.seq2seq.cli",      # stage 3: hfrepro translate
    "hfrepro.fewshot.cli",      # stage 4: hfrepro fewshot
    "hfrepro.finetune.cli",     # stage 5: hfrepro finetune {prepare-data,create,follow,list}, hfrepro chat
    "hfrepro.rlhf.cli",         # stage 6
    "hfrepro.hub_cli",          # sharing: hfrepro push
    "hfrepro.reproduce",        # the main job: hfrepro reproduce
]

# Recipes runnable as `hfrepro <name> [args]`: the same script as `python recipes/<name>.py [args]`.
RECIPES = {
    "smoke": "check a setup: a tiny causal-LM training through the shared plumbing (any accelerate config)",
    "word2vec": "stage 1: word2vec CBOW and skip-gram, evaluated on analogies and word similarity",
    "ngram": "stage 2: unigram, bigram and Kneser-Ney n-gram language models",
    "lstm": "stage 2: an LSTM language model in plain torch",
    "clm": "stage 2: a GPT-2-architecture causal LM pretrained from scratch",
    "mlm": "stage 2: a BERT masked LM pretrained from scratch",
    "seq2seq": "stage 3: seq2seq translation (rnn | rnn_attention | transformer), scored with BLEU/chrF",
    "fewshot": "stage 4: zero/one/few-shot in-context evaluation",
    "sft": "stage 5: supervised fine-tuning (full | head | lora) with TRL's SFTTrainer",
    "reward": "stage 6: reward model from preference pairs (TRL RewardTrainer)",
    "ppo": "stage 6: PPO against a reward model (TRL)",
    "rlhf": "stage 6: SFT -> reward model -> PPO (or rloo | grpo | dpo) in one run",
}


def _register_all(sub) -> None:
    for mod in COMMAND_MODULES:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and mod.startswith(e.name):  # that stage is not in this checkout (yet)
                continue
            raise
        m.register(sub)


def build_parser() -> argparse.ArgumentParser:
    from hfrepro import __version__

    parser = argparse.ArgumentParser(
        prog="hfrepro",
        description="hfrepro: the road from word2vec to ChatGPT, stage by stage, on the Hugging Face stack.",
        epilog="[recipe] commands run recipes/<name>.py with the same arguments; see `hfrepro <recipe> --help`.")
    parser.add_argument("--version", action="version", version=f"hfrepro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _register_all(sub)
    for name, help_ in RECIPES.items():
        if (RECIPES_DIR / f"{name}.py").is_file():
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
