"""What a reward model is measured by: held-out pairwise accuracy (the share of pairs it ranks right).

The reward model itself is an `AutoModelForSequenceClassification` with one output, trained by TRL's
`RewardTrainer` with the Bradley-Terry loss -log sigmoid(r(chosen) - r(rejected)) (recipes/reward.py,
recipes/rlhf.py). Pairs are pre-tokenised as `prompt + response + EOS` (prefs.tokenize_pairs), so the score is
read at the EOS token, exactly where PPO reads it; the pad token is set (and differs from EOS) - the two
classic reasons for a reward model stuck at 50-60 % accuracy.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from hfrepro import runtime
from hfrepro.fsutil import atomic_write_text
from hfrepro.lora import count_parameters
from hfrepro.rlhf.sampling import answer_scores, pad_answers


def pairwise_accuracy(model, tok, ds) -> dict:
    """Share of pairs with score(chosen) > score(rejected), overall and per `kind` when the column exists; and
    the per-pair records (kind, both scores, right or not) the claims' bootstrap intervals are computed from.
    Each prompt runs once and each distinct answer is scored once (hfrepro/rlhf/sampling.py): a held-out
    prompt is paired with every kind of mistake."""
    plen = ds["prompt_len"] if "prompt_len" in ds.column_names else [0] * len(ds)
    scored = score_answers(model, tok, [(tuple(x[:n]), tuple(x[n:])) for x, n in zip(ds["chosen_ids"], plen)]
                           + [(tuple(x[:n]), tuple(x[n:])) for x, n in zip(ds["rejected_ids"], plen)])
    m = len(ds)
    sc, sr = scored[:m], scored[m:]
    kinds = ds["kind"] if "kind" in ds.column_names else ["all"] * len(ds)
    by: dict[str, list[bool]] = defaultdict(list)
    for c, r, k in zip(sc, sr, kinds):
        by[k].append(c > r)
    wins = [c > r for c, r in zip(sc, sr)]
    out = {"accuracy": sum(wins) / len(wins), "pairs": len(wins),
           "margin": sum(c - r for c, r in zip(sc, sr)) / len(wins),
           "records": [{"kind": k, "chosen": round(c, 5), "rejected": round(r, 5), "right": bool(c > r)}
                       for c, r, k in zip(sc, sr, kinds)]}
    if len(by) > 1:
        out["by_kind"] = {k: round(sum(v) / len(v), 4) for k, v in sorted(by.items())}
    return out


def score_answers(model, tok, items: list[tuple[tuple, tuple]], batch_size: int = 32) -> list[float]:
    """The score of each (prompt ids, answer ids), every distinct prompt run once."""
    import torch

    unique = list(dict.fromkeys(items))
    prompts = list(dict.fromkeys(p for p, _ in unique))
    where = {p: i for i, p in enumerate(prompts)}
    got: dict = {}
    model.eval()
    for i in range(0, len(prompts), batch_size):
        chunk = set(prompts[i:i + batch_size])
        todo = [(p, a) for p, a in unique if p in chunk]
        idx = torch.tensor([where[p] - i for p, _ in todo])
        s = answer_scores(model, [list(p) for p in prompts[i:i + batch_size]], pad_answers([list(a) for _, a in todo],
                          tok.pad_token_id), idx, tok.pad_token_id)
        got.update(zip(todo, s.tolist()))
    return [got[x] for x in items]


def reward_metrics(trainer, result, tok, train_ids, test_ids, folder=None) -> dict:
    """Held-out (and training) pairwise accuracy of the trained reward model, on the main process ({} on the
    others); the held-out pairs' records go to folder/eval_pairs.jsonl. Every process calls it."""
    metrics: dict = {}
    acc = trainer.accelerator
    if acc.is_main_process:
        model = acc.unwrap_model(trainer.model)
        held = pairwise_accuracy(model, tok, test_ids)
        train_acc = pairwise_accuracy(model, tok, train_ids.select(range(min(len(train_ids), 64))))
        trainable, total = count_parameters(model)
        metrics = {"rm_test_accuracy": held["accuracy"], "rm_test_pairs": held["pairs"],
                   "rm_test_margin": held["margin"], "rm_test_accuracy_by_kind": held.get("by_kind"),
                   "rm_train_accuracy": train_acc["accuracy"], "rm_train_pairs": len(train_ids),
                   "rm_steps": trainer.state.global_step, "rm_train_loss": result.training_loss,
                   "rm_seconds": round(result.metrics["train_runtime"], 2),
                   "rm_layers": model.config.num_hidden_layers, "rm_trainable_params": trainable,
                   "rm_params": total, "world_size": acc.num_processes}
        if folder is not None:
            atomic_write_text(Path(folder) / "eval_pairs.jsonl",
                              "".join(json.dumps(r) + "\n" for r in held["records"]))
    runtime.wait_for_everyone()
    return metrics


def describe(metrics: dict) -> str:
    """One line: held-out pairwise accuracy, per rejected kind."""
    by = metrics.get("rm_test_accuracy_by_kind") or {}
    return (f"held-out pairwise accuracy {metrics['rm_test_accuracy']:.3f} on {metrics['rm_test_pairs']} pairs"
            + (" (" + ", ".join(f"{k} {v:.2f}" for k, v in by.items()) + ")" if by else ""))
