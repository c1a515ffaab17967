"""The main job's plan: the stages in road order, and what a stage runs.

A stage is a module `hfrepro.reproduce.<name>` holding:

    CLAIMS = [Claim("lm-ppl-ladder", "Perplexity falls from unigram to ... GPT"), ...]
    RUNS = [RecipeRun("ngram"), RecipeRun("clm"), RecipeRun("word2vec", name="korean", config="word2vec/korean")]
    def section(ctx: StageContext) -> StageResult: ...

Each `RecipeRun` is exactly what a user would type: `hfrepro <recipe> --budget <budget> --output_dir
<stage folder>/<name> --seed <seed>` plus its `args` (wiring only, e.g. a path to another run; never a budget
number: budgets live in recipes/configs/<config>/<budget>.yaml). `{stage}` in an argument is the stage folder,
`{root}` the main job's folder (to use another stage's run, e.g. `--model_name_or_path {root}/lm/clm`: name that
stage in the reader's `after`, so the runner starts the reader once it is finished), `{seed+N}` the main job's
seed plus N (a second training seed of the same config: `args=("--seed", "{seed+100}")`; the last `--seed` wins).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hfrepro.claims import StageContext
from hfrepro.config import config_path


@dataclass(frozen=True)
class RecipeRun:
    recipe: str                      # recipes/<recipe>.py
    name: str | None = None          # its folder under the stage folder (default: the recipe's name)
    config: str | None = None        # recipes/configs/<config>/<budget>.yaml (default: the recipe's name)
    args: tuple[str, ...] = ()       # more arguments: wiring only

    @property
    def folder(self) -> str:
        return self.name or self.recipe

    def argv(self, ctx: StageContext) -> list[str]:
        cfg = config_path(self.config or self.recipe, ctx.budget)
        return ["--config", str(cfg), "--output_dir", str(ctx.run_dir(self.folder)), "--seed", str(ctx.seed),
                "--threads", str(ctx.threads), *(["--precision", ctx.precision] if ctx.precision != "fp32" else []),
                *(wire(a, ctx) for a in self.args)]

    def sources(self, budget: str) -> list[Path]:
        """The files this run's result depends on: its recipe and its budget's config."""
        return [recipe_file(self.recipe), config_path(self.config or self.recipe, budget)]


@contextmanager
def timed(times: dict, name: str, stage: str):
    """Print `[stage] name ...`, run the block, and keep its seconds in `times[name]` (a section's own steps)."""
    t = time.time()
    print(f"[{stage}] {name} ...", flush=True)
    yield
    times[name] = round(time.time() - t, 1)


def wire(arg: str, ctx: StageContext) -> str:
    """A RecipeRun argument with {stage}, {root} and {seed+N} filled in."""
    arg = arg.replace("{stage}", str(ctx.dir)).replace("{root}", str(ctx.root))
    return re.sub(r"\{seed\+(\d+)\}", lambda m: str(ctx.seed + int(m.group(1))), arg)


@dataclass(frozen=True)
class Stage:
    name: str
    title: str                                      # without a number: `heading` numbers it by road order
    expected_s: dict = field(default_factory=dict)  # budget -> seconds, for the progress estimate and the order
    #                                                 side by side (default: the stage walls of the published walk,
    #                                                 docs/example-report, seed 0, 2026-12-06: this 2-core AMD, two
    #                                                 stages side by side at 1 thread each; docs/DEVELOPING.md)
    after: tuple[str, ...] = ()                     # stages whose run folders this one reads (when chosen too)
    expected_gib: dict = field(default_factory=dict)  # budget -> peak GiB of the stage's process, so that stages
    #                                                   run side by side stay under a cap (default: the largest of
    #                                                   its peaks measured, at 2 threads alone and at 1 thread side
    #                                                   by side, 2026-12-04/05, the default walks at seeds 0, 1, 2
    #                                                   included; docs/DEVELOPING.md, "Memory"); with "<budget>/bf16"
    #                                                   entries for `cpu_bf16` stages (expected_s too)
    cpu_bf16: bool = False                          # `hfrepro reproduce` at bf16 (its default on a CPU with AMX)
    #                                                 runs it in mixed precision: its time is training matrix
    #                                                 products, which bf16 speeds up (docs/DEVELOPING.md, "Mixed
    #                                                 precision on the CPU"), and its claims gave the same verdicts at
    #                                                 seeds 0, 1, 2 as in fp32 (docs/CLAIMS.md); the others stay fp32
    #                                                 (no gain measured, a verdict that moved: lm and rlhf, or a
    #                                                 library that cannot take bf16 tensors: stable-baselines3)

    def peak_gib(self, budget: str, precision: str = "fp32") -> float:
        """The stage's expected peak memory; at bf16 its own entry (`"<budget>/bf16"`): casting the weights to bf16
        for every product next to the fp32 ones, mixed precision raises a stage's peak (rlhf: 2.45 -> 3.12 GiB)."""
        return _at(self.expected_gib, budget, self.precision(precision), 0.0)

    def seconds(self, budget: str, precision: str = "fp32") -> float:
        """The stage's expected wall time (the progress estimate and the order side by side), at its precision."""
        return _at(self.expected_s, budget, self.precision(precision), 60.0)

    def precision(self, requested: str) -> str:
        """The precision this stage runs at when the main job asks for `requested`."""
        return requested if self.cpu_bf16 else "fp32"

    @property
    def heading(self) -> str:
        """The stage's title in REPORT.md, numbered by its place on the road ("Stage 9: RLHF ...")."""
        return f"Stage {STAGE_NAMES.index(self.name) + 1}: {self.title}"

    @property
    def module(self) -> str:
        return f"hfrepro.reproduce.{self.name}"

    def load(self):
        return importlib.import_module(self.module)

    def exists(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def _at(table: dict, budget: str, precision: str, missing: float) -> float:
    own = table.get(f"{budget}/{precision}")
    return own if own is not None else table.get(budget, missing)


STAGES = [  # road order; a stage whose module does not exist yet is skipped (NOT RUN)
    Stage("embeddings", "Word embeddings (word2vec CBOW vs skip-gram)",
          expected_s={"tiny": 40, "default": 147, "full": 1200}, expected_gib={"default": 1.31}),
    Stage("lm", "Language models (n-gram, LSTM, GPT), perplexity, sampling",
          expected_s={"tiny": 45, "default": 850, "full": 3600},  # fp32: bf16 saved a fifth of its time and, at
          expected_gib={"default": 2.30}),  # seed 0, made GPT-1's pre-training gain INCONCLUSIVE (docs/CLAIMS.md)
    Stage("seq2seq", "Translation (seq2seq with and without attention, BLEU)",
          expected_s={"tiny": 45, "default": 748, "full": 3600}, expected_gib={"default": 1.27}),
    Stage("transformer", "Inside the Transformer, and why RNNs gave way",  # reads lm/clm, seq2seq/run, bert's model
          expected_s={"tiny": 30, "default": 107, "full": 600}, after=("lm", "seq2seq", "bert"),
          expected_gib={"default": 1.30}),
    Stage("bert", "BERT, whole (masked LM, next-sentence prediction, fine-tuning)",  # reads the skip-gram vectors;
          # bf16: the AMX walk of 2026-12-07 (2,000 steps; 1 thread, side by side), as finetune's
          expected_s={"tiny": 30, "default": 989, "default/bf16": 557, "full": 1800}, after=("embeddings",),
          expected_gib={"default": 1.38, "default/bf16": 2.14}, cpu_bf16=True),
    Stage("fewshot", "Zero-, one- and few-shot in-context learning",
          expected_s={"tiny": 45, "default": 157, "full": 1800}, expected_gib={"default": 2.00}),
    Stage("finetune", "Fine-tuning (head-only, LoRA, full)",  # bf16: the AMX walk of 2026-12-07, as bert's
          expected_s={"tiny": 45, "default": 492, "default/bf16": 239, "full": 1800},
          expected_gib={"default": 3.00, "default/bf16": 3.25}, cpu_bf16=True),
    Stage("rl_basics", "Reinforcement learning from first principles (CartPole, FrozenLake)",
          expected_s={"tiny": 30, "default": 134, "full": 1200}, expected_gib={"default": 0.49}),
    Stage("rlhf", "RLHF (SFT, reward model, the RL ladder: REINFORCE, RLOO, A2C, PPO)",  # fp32 everywhere since
          # 2026-12-07: in bf16 on AMX `ppo-no-echo` was INCONCLUSIVE at seed 1 (docs/CLAIMS.md, "The default on a
          # CPU with AMX (2026-12-07)")
          expected_s={"tiny": 45, "default": 898, "full": 3600}, expected_gib={"default": 2.45}),
    Stage("chatgpt", "ChatGPT's behaviour (declining, follow-up corrections)",
          expected_s={"tiny": 30, "default": 370, "full": 1200},  # the walk's 309 s + ~60 s of the policy's samples
          expected_gib={"default": 3.13}),
]
STAGE_NAMES = [s.name for s in STAGES]


def available() -> list[Stage]:
    return [s for s in STAGES if s.exists()]


def recipe_module(name: str):
    """The recipe `recipes/<name>.py`, imported as `hfrepro.recipes.<name>`."""
    return importlib.import_module(f"hfrepro.recipes.{name}")


def recipe_file(name: str) -> Path:
    """The recipe's file, found without importing it (importing one loads transformers, trl...: seconds of CPU
    that the runner, which only hashes the file, would take from the stages beside it)."""
    return Path(importlib.util.find_spec(f"hfrepro.recipes.{name}").origin)


def recipe_cli(name: str) -> Callable:
    return recipe_module(name).cli
