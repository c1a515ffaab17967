"""Preference data for RLHF, built from real embedded material (or read from the user's file).

The embedded task: **one-word answers to questions built from the Mikolov et al. (2013) analogy pairs**
(`questions-words`, shipped inside gensim). Each pair (Greece -> Athens, car -> cars, bad -> worse,
dancing -> danced, ...) becomes a prompt with a checkable gold answer:

    system: Answer with one word.
    user:   What is the capital of Greece?
    chosen:   Athens
    rejected: Sparta-like mistakes, built from real material in five documented ways (REJECTED_KINDS)

Because every prompt has a gold answer, the policy's improvement can be checked **without the reward model**:
exact-match accuracy of its answer on held-out prompts (`exact_match`).

Items (relation, input word) are split into train / validation / test *by item*, stratified by relation,
so no held-out question (nor its answer as a chosen response) is seen in SFT, reward modelling or RL.

User data in TRL's preference formats works too (`load_preferences("file.jsonl")`):
standard (`prompt`, `chosen`, `rejected` strings) or conversational (lists of `{"role", "content"}`);
an optional `answer` column enables the independent exact-match metric.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from hfrepro import data
from hfrepro.errors import UserError
from hfrepro.splits import split_dataset

SYSTEM = "Answer with one word."
SOURCE = "questions-words"

# section of questions-words -> (question template, which column is the input x, which is the answer y)
RELATIONS: dict[str, tuple[str, str, str]] = {
    "capital-common-countries": ("What is the capital of {x}?", "b", "a"),
    "capital-world": ("What is the capital of {x}?", "b", "a"),
    "currency": ("What is the currency of {x}?", "a", "b"),
    "city-in-state": ("In which US state is the city of {x}?", "a", "b"),
    "family": ("What is the female form of '{x}'?", "a", "b"),
    "gram1-adjective-to-adverb": ("What is the adverb formed from '{x}'?", "a", "b"),
    "gram2-opposite": ("What is the opposite of '{x}', formed with a prefix?", "a", "b"),
    "gram3-comparative": ("What is the comparative form of '{x}'?", "a", "b"),
    "gram4-superlative": ("What is the superlative form of '{x}'?", "a", "b"),
    "gram5-present-participle": ("What is the -ing form of '{x}'?", "a", "b"),
    "gram6-nationality-adjective": ("What is the nationality adjective for {x}?", "a", "b"),
    "gram7-past-tense": ("'{x}' is the -ing form of a verb. What is its past tense?", "a", "b"),
    "gram8-plural": ("What is the plural of '{x}'?", "a", "b"),
    "gram9-plural-verbs": ("Which form of the verb '{x}' goes with 'she' in the present tense?", "a", "b"),
}
# the two capital sections ask the same question: one relation
RELATION_NAME = {s: ("capital" if s.startswith("capital") else s.split("-", 1)[1] if s.startswith("gram") else s)
                 for s in RELATIONS}

# How a rejected answer is made from real material (the dataset card repeats this table).
REJECTED_KINDS: dict[str, str] = {
    "wrong": "the gold answer of another question of the same relation (a real, well-formed but wrong answer: "
             "another capital, another plural)",
    "echo": "the question's own input word repeated back (Greece for the capital of Greece)",
    "sentence": "the gold answer inside a sentence ('The answer is Athens.'): right, but breaks the one-word "
                "instruction",
    "truncated": "the gold answer cut short by 1-3 characters (Athe)",
    "repeated": "the gold answer repeated three times (Athens Athens Athens)",
}
KIND_WEIGHTS = {"wrong": 0.4, "echo": 0.15, "sentence": 0.15, "truncated": 0.15, "repeated": 0.15}


@dataclass(frozen=True)
class Item:
    relation: str
    x: str
    answer: str
    question: str

    def prompt(self) -> list[dict]:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": self.question}]


def build_items(seed: int = 0) -> dict[str, list[Item]]:
    """Unique (relation, x -> answer) items from questions-words, split train/validation/test 70/10/20 by item,
    stratified by relation. Inputs with two different answers (Glendale: Arizona or California) are dropped."""
    ds = data.load(SOURCE, split="all")
    answers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in ds:
        sec = r["section"]
        if sec not in RELATIONS:
            continue
        _, xcol, ycol = RELATIONS[sec]
        for a, b in ((r["a"], r["b"]), (r["c"], r["d"])):
            row = {"a": a, "b": b}
            answers[(sec, row[xcol])].add(row[ycol])
    by_rel: dict[str, dict[str, Item]] = defaultdict(dict)
    for (sec, x), ys in sorted(answers.items()):
        if len(ys) != 1:
            continue
        rel = RELATION_NAME[sec]
        by_rel[rel].setdefault(x, Item(rel, x, next(iter(ys)), RELATIONS[sec][0].format(x=x)))
    rng = random.Random(seed)
    split: dict[str, list[Item]] = {"train": [], "validation": [], "test": []}
    for rel in sorted(by_rel):
        items = sorted(by_rel[rel].values(), key=lambda it: it.x)
        rng.shuffle(items)
        n = len(items)
        n_test, n_val = round(0.2 * n), round(0.1 * n)
        split["test"] += items[:n_test]
        split["validation"] += items[n_test:n_test + n_val]
        split["train"] += items[n_test + n_val:]
    for k in split:
        rng.shuffle(split[k])
    return split


def make_rejected(item: Item, kind: str, pool: list[Item], rng: random.Random) -> str:
    ans = item.answer
    if kind == "wrong":
        others = sorted({it.answer for it in pool if it.relation == item.relation and it.answer.lower() != ans.lower()})
        return rng.choice(others)
    if kind == "echo":
        return item.x
    if kind == "sentence":
        return f"The answer is {ans}."
    if kind == "truncated":
        cut = min(len(ans) - 1, rng.randint(1, 3))
        return ans[:len(ans) - cut] if cut > 0 else ans + ans[-1]
    if kind == "repeated":
        return " ".join([ans] * 3)
    raise ValueError(kind)


def preference_rows(items: list[Item], pairs_per_prompt: int, seed: int, pool: list[Item] | None = None) -> list[dict]:
    """Rows in TRL's conversational preference format, plus the metadata columns relation/answer/kind."""
    rng = random.Random(seed)
    pool = pool or items
    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
    rows = []
    for it in items:
        chosen_kinds: list[str] = []
        while len(chosen_kinds) < min(pairs_per_prompt, len(kinds)):
            k = rng.choices(kinds, weights)[0]
            if k not in chosen_kinds:
                chosen_kinds.append(k)
        for k in chosen_kinds:
            rej = make_rejected(it, k, pool, rng)
            if rej.strip().lower() == it.answer.lower():
                continue
            rows.append({"prompt": it.prompt(), "chosen": [{"role": "assistant", "content": it.answer}],
                         "rejected": [{"role": "assistant", "content": rej}],
                         "relation": it.relation, "answer": it.answer, "kind": k})
    return rows


def embedded_preferences(seed: int = 0, pairs_per_prompt: int = 2):
    """DatasetDict train/validation/test of preference pairs (conversational) with relation/answer/kind.
    Training prompts get `pairs_per_prompt` rejected kinds each (drawn with KIND_WEIGHTS); held-out prompts get
    every kind, so that each kind of mistake is measured on every held-out question."""
    from datasets import Dataset, DatasetDict

    split = build_items(seed)
    pool = [it for v in split.values() for it in v]
    per = {"train": pairs_per_prompt}
    return DatasetDict({name: Dataset.from_list(preference_rows(items, per.get(name, len(KIND_WEIGHTS)), seed + i,
                                                                pool))
                        for i, (name, items) in enumerate(split.items())})


# --- the user's own preference data ---------------------------------------------------------------------

def _is_messages(v) -> bool:
    return isinstance(v, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in v)


def check_preferences(rows, where: str) -> str:
    """Validate TRL's standard or conversational preference format (a Dataset or a list of dicts);
    returns 'standard' or 'conversational'."""
    rows = list(rows)
    if not rows:
        raise UserError("preference data has no rows", where=where)
    cols = set(rows[0])
    missing = {"prompt", "chosen", "rejected"} - cols
    if missing:
        raise UserError(f"preference data needs the columns prompt, chosen, rejected; missing: "
                        f"{', '.join(sorted(missing))} (it has: {', '.join(sorted(cols))})", where=where,
                        fix="use TRL's preference format: {\"prompt\": ..., \"chosen\": ..., \"rejected\": ...} per "
                            "line, strings or lists of {\"role\", \"content\"} messages")
    conv = _is_messages(rows[0]["prompt"])
    for i, r in enumerate(rows):
        for c in ("prompt", "chosen", "rejected"):
            v = r.get(c)
            ok = _is_messages(v) if conv else isinstance(v, str)
            if not ok or not v:
                raise UserError(f"row {i + 1}: column {c!r} is {'not a list of messages' if conv else 'not a string'}"
                                f" or is empty (every row must use the format of row 1)", where=where,
                                fix="make every row use the same format: all strings, or all message lists")
        if r["chosen"] == r["rejected"]:
            raise UserError(f"row {i + 1}: chosen and rejected are identical", where=where,
                            fix="a preference pair needs two different responses")
    return "conversational" if conv else "standard"


def load_preferences(name: str, seed: int = 0, pairs_per_prompt: int = 2):
    """`questions-words` (the embedded task) or a file/folder in TRL's preference format -> DatasetDict."""
    if name in (SOURCE, "qw-prefs"):
        return embedded_preferences(seed, pairs_per_prompt)
    p = Path(name).expanduser()
    if p.is_file() and p.suffix.lower() in (".jsonl", ".json"):
        from datasets import Dataset
        rows = data.read_jsonl(p)
        check_preferences(rows, str(p))
        return split_by_prompt(Dataset.from_list(rows), seed)
    dd = data.load(name, seed=seed)
    for split in dd:
        check_preferences(dd[split], f"{name} ({split})")
    return dd


# --- turning rows into token ids the way PPO will see them ----------------------------------------------

def prompt_text(tok, prompt) -> str:
    """The prompt as the policy sees it: the chat template (with the assistant header) for messages; the
    string itself for TRL's standard format."""
    if _is_messages(prompt):
        return tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return prompt


def completion_text(completion) -> str:
    return completion[-1]["content"] if _is_messages(completion) else completion


def encode_prompt(tok, prompt) -> list[int]:
    return tok(prompt_text(tok, prompt), add_special_tokens=False)["input_ids"]


def encode_completion(tok, completion) -> list[int]:
    """The response tokens followed by EOS: exactly what a policy that stops at EOS generates. The reward model
    is trained on these and reads its score at that EOS, which is where PPO reads it (`get_reward`)."""
    return tok(completion_text(completion), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


def tokenize_pairs(ds, tok):
    """Pre-tokenised `chosen_ids`/`rejected_ids` for TRL's RewardTrainer (it skips its own tokenisation)."""
    def fn(r):
        p = encode_prompt(tok, r["prompt"])
        return {"chosen_ids": p + encode_completion(tok, r["chosen"]),
                "rejected_ids": p + encode_completion(tok, r["rejected"]), "prompt_len": len(p)}
    return ds.map(fn, remove_columns=[c for c in ds.column_names if c not in ("relation", "kind", "answer")])


def without_prompt_len(ds):
    """The pairs as TRL's RewardTrainer takes them (prompt_len, for hfrepro's scoring, dropped)."""
    return ds.remove_columns(["prompt_len"]) if "prompt_len" in ds.column_names else ds


def split_by_prompt(ds, seed: int):
    """Seeded train/validation/test split (80/10/10 of the pairs) that keeps every pair of one prompt in one split:
    a held-out prompt is never seen in SFT, reward modelling or RL, however many pairs a file gives it."""
    keyed = ds.add_column("_prompt_key", [json.dumps(p, sort_keys=True) for p in ds["prompt"]])
    return split_dataset(keyed, seed, group_by="_prompt_key").remove_columns("_prompt_key")


def held_out(dd):
    """The held-out split: `test`, else `validation`."""
    return dd["test"] if "test" in dd else dd["validation"]


def unique_prompts(ds) -> list[dict]:
    """One row per distinct prompt: {prompt, chosen, answer?, relation?} (chosen = the first preferred answer)."""
    seen, out = set(), []
    for r in ds:
        key = repr(r["prompt"])
        if key in seen:
            continue
        seen.add(key)
        out.append({"prompt": r["prompt"], "chosen": r["chosen"], "answer": r.get("answer"),
                    "relation": r.get("relation")})
    return out


def demonstrations(rows: list[dict]) -> list[dict]:
    """SFT data in TRL's prompt-completion format: each prompt with its preferred answer (the demonstration)."""
    return [{"prompt": r["prompt"], "completion": r["chosen"]} for r in rows]


# --- the independent metric -------------------------------------------------------------------------------

def normalise(text: str) -> str:
    return re.sub(r"[\s.,;:!?\"'`]+$", "", re.sub(r"^[\s\"'`]+", "", text)).strip().lower()


def exact_match(response: str, answer: str) -> bool:
    """The response, stripped of surrounding spaces/quotes/final punctuation, equals the gold answer (any case)."""
    return normalise(response) == answer.strip().lower()


def echoes(response: str, question: str, answer: str | None = None) -> bool:
    """The response repeats words of the question back ("Greece" to "What is the capital of Greece?",
    "increasing" to "'increasing' is the -ing form of a verb. What is its past tense?"): the reward hack the
    RLHF stage watches for. Never when the response is the gold answer."""
    r = normalise(response)
    if not r or (answer and r == answer.strip().lower()):
        return False
    return re.search(r"(?<!\w)" + re.escape(r) + r"(?!\w)", question.lower()) is not None
