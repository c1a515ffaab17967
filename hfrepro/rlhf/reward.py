"""Reward modelling with TRL's `RewardTrainer`: a one-output sequence classifier trained on preference pairs
with the Bradley-Terry loss -log sigmoid(r(chosen) - r(rejected)); reported as held-out pairwise accuracy.

Pairs are pre-tokenised as `prompt + response + EOS` (prefs.tokenize_pairs), so the score is read at the EOS
token, exactly where PPO reads it; the pad token is set (and differs from EOS) - the two classic reasons for a
reward model stuck at 50-60 % accuracy.
"""

from __future__ import annotations

import time
from collections import defaultdict


def pairwise_accuracy(model, tok, ds) -> dict:
    """Share of pairs with score(chosen) > score(rejected), overall and per `kind` when the column exists."""
    from hfrepro.rlhf.models import score

    sc = score(model, ds["chosen_ids"], tok.pad_token_id)
    sr = score(model, ds["rejected_ids"], tok.pad_token_id)
    kinds = ds["kind"] if "kind" in ds.column_names else ["all"] * len(ds)
    by: dict[str, list[bool]] = defaultdict(list)
    for c, r, k in zip(sc, sr, kinds):
        by[k].append(c > r)
    wins = [c > r for c, r in zip(sc, sr)]
    out = {"accuracy": sum(wins) / len(wins), "pairs": len(wins),
           "margin": sum(c - r for c, r in zip(sc, sr)) / len(wins)}
    if len(by) > 1:
        out["by_kind"] = {k: round(sum(v) / len(v), 4) for k, v in sorted(by.items())}
    return out


def train_reward(*, run, tok, model_name: str, train_ds, eval_ds, test_ds, config, layers: int = 0,
                 trainable_layers: int = 0) -> dict:
    """Train the reward model (`config` is a `RewardConfig`, output_dir = run.checkpoints); save it to
    run.model_dir on the main process; return held-out pairwise accuracy (main process) or {}."""
    from trl import RewardTrainer

    from hfrepro.rlhf.models import load_scorer, save_complete, trainable_share
    from hfrepro.rlhf.prefs import tokenize_pairs
    from hfrepro.training import callbacks

    tok.padding_side = "right"
    model = load_scorer(model_name, tok, layers=layers, trainable_layers=trainable_layers)
    tr = tokenize_pairs(train_ds, tok)
    ev = tokenize_pairs(eval_ds, tok) if eval_ds is not None and len(eval_ds) else None
    config.pad_token = tok.pad_token
    trainer = RewardTrainer(model=model, args=config, train_dataset=tr, eval_dataset=ev, processing_class=tok,
                            callbacks=callbacks(run))
    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=run.last_checkpoint())
    seconds = time.perf_counter() - t0
    acc = trainer.accelerator
    acc.wait_for_everyone()
    metrics: dict = {}
    if acc.is_main_process:
        m = acc.unwrap_model(trainer.model)
        te = tokenize_pairs(test_ds, tok)
        held = pairwise_accuracy(m, tok, te)
        train_acc = pairwise_accuracy(m, tok, tr.select(range(min(len(tr), len(te)))))
        save_complete(m, tok, run.model_dir)
        t, n = trainable_share(m)
        metrics = {"rm_test_accuracy": held["accuracy"], "rm_test_pairs": held["pairs"],
                   "rm_test_margin": held["margin"], "rm_test_accuracy_by_kind": held.get("by_kind"),
                   "rm_train_accuracy": train_acc["accuracy"], "rm_train_pairs": len(tr),
                   "rm_steps": trainer.state.global_step, "rm_train_loss": out.training_loss,
                   "rm_seconds": round(seconds, 2), "rm_layers": m.config.num_hidden_layers,
                   "rm_trainable_params": t, "rm_params": n}
    acc.wait_for_everyone()
    tok.padding_side = "left"
    return metrics


# --- recipes/reward.py -----------------------------------------------------------------------------------

from dataclasses import dataclass, field  # noqa: E402


@dataclass
class RewardScriptArguments:
    model: str = field(default="smollm2-135m-instruct", metadata={
        "help": "model the reward model starts from (embedded name, folder, e.g. runs/rlhf/sft/model, or Hub id)"})
    dataset: str = field(default="questions-words", metadata={
        "help": "questions-words (embedded task) or a TRL preference file: prompt/chosen/rejected per row"})
    pairs_per_prompt: int = field(default=2, metadata={"help": "rejected answers per prompt (embedded task)"})
    max_train_pairs: int = field(default=0, metadata={"help": "use at most this many training pairs (0: all)"})
    layers: int = field(default=16, metadata={"help": "transformer blocks kept (0: all)"})
    trainable_layers: int = field(default=4, metadata={"help": "top blocks trained (0: all)"})
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: cores / processes)"})
    overwrite: bool = field(default=False, metadata={"help": "start afresh if output_dir holds another run"})


def run_reward_recipe(script: RewardScriptArguments, config) -> dict | None:
    """Train and evaluate a reward model into the run folder `config.output_dir` (model/ = the reward model)."""
    from hfrepro.rlhf.models import runtime_state

    from hfrepro.config import resolved
    from hfrepro.rlhf import prefs
    from hfrepro.rlhf.models import load_tokenizer
    from hfrepro.rlhf.pipeline import _begin, _finish
    from hfrepro.training import RunDir, cpu_sane, setup_runtime

    setup_runtime(seed=config.seed, threads=script.threads or None)
    cpu_sane(config)
    state = runtime_state()
    run = RunDir(config.output_dir)
    cfg = resolved(script, config)
    if _begin(run, cfg, script.overwrite, state):
        return run.metrics() if state.is_main_process else None
    tok = load_tokenizer(script.model)
    data = prefs.load_preferences(script.dataset, seed=config.seed, pairs_per_prompt=script.pairs_per_prompt)
    train = data["train"].shuffle(seed=config.seed)
    if script.max_train_pairs:
        train = train.select(range(min(script.max_train_pairs, len(train))))
    test = data["test"] if "test" in data else data["validation"]
    config.output_dir = str(run.checkpoints)
    from hfrepro.models import resolve
    m = train_reward(run=run, tok=tok, model_name=resolve(script.model), train_ds=train,
                     eval_ds=data.get("validation"), test_ds=test, config=config, layers=script.layers,
                     trainable_layers=script.trainable_layers)
    m = _finish(run, m, state, dict(title="Reward model (hfrepro)", tags=["reward-model", "trl"],
                                    pipeline_tag="text-classification",
                                    description="Bradley-Terry reward model trained with TRL's RewardTrainer on "
                                                "preference pairs; the score is read at the EOS token."))
    return m if state.is_main_process else None
