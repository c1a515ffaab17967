"""The harmlessness set (data/harmlessness.jsonl, data_cards/harmlessness.md): requests to decline and benign
look-alikes to answer; how a seed splits it; and the training data built from it.

    rows = load("harmlessness")                      # or a JSONL file of {"prompt", "label", "category"}
    s = split(rows, seed=0, n_eval=32, n_decline=24, n_answer=48)
    demos = demonstrations(s["train"], base_replies)  # SFT: refusals for `decline`, the base's own answers else
    pairs = preference_pairs(s["train"], base_replies, seed=0)   # reward model: chosen / rejected

Labels: `decline` (the model should refuse: violent, sexual, self-harm, hateful, dangerous) and `answer`
(benign questions on the same sensitive topics: a refusal there is an **over-refusal**).

The refusal demonstrations are written here (`REFUSALS`, one per category, each opening with a refusal the
rule of `hfrepro.chatgpt.refusal` recognises). The helpful demonstrations are the base model's own greedy
answers to the benign training prompts, cut after their last complete sentence: the SFT data then teaches
*when* to refuse without teaching the model new answers. Preference pairs come from the same replies:
for a request to decline, the refusal is chosen over the base model's reply; for a benign one, the base model's
answer is chosen over a refusal. Training prompts the base model already refused give no pair and no helpful
demonstration (there is no answer of its own to keep).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

from hfrepro.chatgpt.refusal import is_refusal
from hfrepro.errors import UserError

DATA = Path(__file__).resolve().parent / "data" / "harmlessness.jsonl"
LABELS = ("decline", "answer")
REFUSALS = {
    "violent": "I'm sorry, but I can't help with that. I won't help hurt, threaten or scare anyone.",
    "sexual": "I'm sorry, but I can't help with that. I don't write sexual content.",
    "self-harm": "I'm sorry you're going through this, but I can't help with that. Please talk to someone you "
                 "trust or call a local crisis line; you don't have to face this alone.",
    "hateful": "I'm sorry, but I can't help with that. I won't demean people for who they are.",
    "dangerous": "I'm sorry, but I can't help with that. It could put people in danger or break the law.",
}
GENERIC_REFUSAL = "I'm sorry, but I can't help with that."


def load(name: str | Path = "harmlessness") -> list[dict]:
    """The shipped set (`harmlessness`) or a JSONL file of {"prompt", "label": decline|answer, "category"}."""
    path = DATA if str(name) == "harmlessness" else Path(name)
    if not path.is_file():
        raise UserError(f"harmlessness set not found: {name}", where=str(path),
                        fix="use `harmlessness` (shipped) or a JSONL file of {\"prompt\", \"label\", \"category\"}")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"line {n} is not JSON: {e.msg}", where=str(path)) from None
        if not isinstance(r, dict) or not str(r.get("prompt", "")).strip() or r.get("label") not in LABELS:
            raise UserError(f"line {n} needs a non-empty \"prompt\" and a \"label\" of {' or '.join(LABELS)}",
                            where=str(path))
        rows.append({"id": r.get("id", f"row{n}"), "prompt": r["prompt"].strip(), "label": r["label"],
                     "category": r.get("category") or "other"})
    for label in LABELS:
        if not any(r["label"] == label for r in rows):
            raise UserError(f"no `{label}` rows in {path.name}", where=str(path),
                            fix="the set needs requests to decline and benign requests to answer")
    return rows


def split(rows: Sequence[dict], seed: int, n_eval: int, n_decline: int, n_answer: int,
          validation: bool = False) -> dict[str, list[dict]]:
    """Held-out: `n_eval` rows of each label; train: the next `n_decline` / `n_answer`. The seed shuffles
    each label's rows first, so every seed holds out different requests, stratified by category: each part holds
    close to a category's share of the label's rows, within two (a seed does not hold out most of one category and
    train on few of it). `validation`: the held-out rows are instead those of each label after the training ones,
    at most `n_eval` (the same training rows; settings are chosen there, never on the held-out rows the claims
    use)."""
    rng = random.Random(seed)
    out: dict[str, list[dict]] = {"eval": [], "train": []}
    for label, n_train in (("decline", n_decline), ("answer", n_answer)):
        mine = stratified([r for r in rows if r["label"] == label], rng)
        if len(mine) < n_eval + n_train + (1 if validation else 0):
            raise UserError(f"{len(mine)} `{label}` rows, but {n_eval} held out + {n_train} for training"
                            + (" + at least 1 for validation" if validation else "") + " asked",
                            fix="lower --eval_per_label / --train_decline / --train_answer")
        start = n_eval + n_train if validation else 0
        out["eval"] += mine[start:start + n_eval]
        out["train"] += mine[n_eval:n_eval + n_train]
    return out


def stratified(rows: Sequence[dict], rng: random.Random) -> list[dict]:
    """`rows` in a seeded order in which every stretch holds close to each category's share: each category is
    shuffled, its k-th row placed at (k + a random offset) / its size, and all sorted by place (systematic
    sampling per category)."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r.get("category", ""), []).append(r)
    placed = []
    for cat in sorted(by):
        mine = by[cat]
        rng.shuffle(mine)
        offset = rng.random()
        placed += [((k + offset) / len(mine), r) for k, r in enumerate(mine)]
    return [r for _, r in sorted(placed, key=lambda t: t[0])]


def conversation(row: dict) -> list[dict]:
    return [{"role": "user", "content": row["prompt"]}]


def refusal_for(row: dict) -> str:
    return REFUSALS.get(row["category"], GENERIC_REFUSAL)


def complete_sentences(text: str, min_chars: int = 20) -> str | None:
    """`text` up to its last complete sentence (None when it has none of at least `min_chars`)."""
    t = text.strip()
    if t.endswith((".", "!", "?")):
        return t
    cut = max(t.rfind(". "), t.rfind("! "), t.rfind("? "), t.rfind(".\n"))
    return t[:cut + 1] if cut + 1 >= min_chars else None


def demonstrations(train: Sequence[dict], base_replies: Sequence[str]) -> list[dict]:
    """SFT conversations: a refusal for each `decline` prompt; the base model's own answer (complete sentences)
    for each `answer` prompt it did not refuse."""
    out = []
    for row, reply in zip(train, base_replies):
        if row["label"] == "decline":
            answer = refusal_for(row)
        else:
            answer = None if is_refusal(reply) else complete_sentences(reply)
        if answer:
            out.append({"messages": conversation(row) + [{"role": "assistant", "content": answer}]})
    return out


def preference_pairs(rows: Sequence[dict], base_replies: Sequence[str], seed: int) -> list[dict]:
    """Conversational preference pairs (TRL's format): refusal over the base reply for `decline` prompts, the
    base answer over a refusal for `answer` prompts; prompts the base model refused give none."""
    rng = random.Random(seed)
    refusals = sorted(REFUSALS.values())
    out = []
    for row, reply in zip(rows, base_replies):
        if is_refusal(reply):
            continue
        out.append(pair(row, refusal_for(row) if row["label"] == "decline" else rng.choice(refusals), reply))
    return out


def pair(row: dict, refusal: str, answer: str, source: str | None = None) -> dict:
    """One conversational preference pair (TRL's format) for `row`: the refusal chosen over the answer for a
    `decline` prompt, the answer over the refusal for an `answer` one; `source` kept as "from" when given."""
    chosen, rejected = (refusal, answer) if row["label"] == "decline" else (answer, refusal)
    out = {"prompt": conversation(row), "chosen": [{"role": "assistant", "content": chosen}],
           "rejected": [{"role": "assistant", "content": rejected}], "label": row["label"]}
    return out | ({"from": source} if source else {})


def policy_pairs(rows: Sequence[dict], samples: Sequence[Sequence[str]], written: Sequence[dict]) -> list[dict]:
    """Pairs from the policy's own sampled replies, as InstructGPT's labellers compared the SFT model's samples:
    where a prompt's samples hold a refusal and an answer, each refusal against each answer (the refusal chosen
    for `decline` prompts, the answer for `answer` ones); an empty sample is neither. A prompt whose samples are
    all one kind keeps its `written` pair (`preference_pairs`), if it has one."""
    kept = {p["prompt"][0]["content"]: p for p in written}
    out = []
    for row, replies in zip(rows, samples):
        said = [r for r in replies if r.strip()]
        refusals, answers = [r for r in said if is_refusal(r)], [r for r in said if not is_refusal(r)]
        if not (refusals and answers):
            out += [kept[row["prompt"]]] if row["prompt"] in kept else []
            continue
        out += [pair(row, ref, ans, source="policy") for ref in refusals for ans in answers]
    return out


def balanced(pairs: Sequence[dict]) -> list[dict]:
    """The pairs (or prompts) with each label's repeated in turn until every label has as many as the largest:
    trained on 32 decline pairs and 61 benign ones, a reward model scores 0.66 by preferring any answer to any
    refusal, without telling the requests apart."""
    by_label = {label: [p for p in pairs if p["label"] == label] for label in LABELS}
    most = max(len(v) for v in by_label.values())
    return [p for v in by_label.values() if v for p in (v * (most // len(v) + 1))[:most]]


def rates(rows: Sequence[dict], replies: Sequence[str]) -> dict[str, list[int]]:
    """label -> one 0/1 per held-out row of that label: 1 when the reply is a refusal (the rule)."""
    out: dict[str, list[int]] = {label: [] for label in LABELS}
    for row, reply in zip(rows, replies):
        out[row["label"]].append(int(is_refusal(reply)))
    return out
