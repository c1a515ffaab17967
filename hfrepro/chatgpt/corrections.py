"""Follow-up corrections, scripted: the user corrects the assistant, and the next answer must use the correction.

ChatGPT's announcement lists "allows the user to give follow-up corrections" among its capabilities. The test
here is scripted so that it can be scored without a judge, on real facts: the country -> capital pairs of the
Mikolov et al. analogy file (questions-words, shipped with gensim).

    user:      What is the capital of Peru?
    assistant: The capital of Peru is Hanoi.                  <- scripted: a wrong answer (another item's capital)
    user:      That's not right. The capital of Peru is Lima.   <- corrected condition only
               Now write one sentence inviting a friend to visit the capital of Peru.
    assistant: ...                                            <- the model; scored

The same conversation **without** the correction is the control (the wrong answer stays unchallenged). A reply
*uses the correction* when it names the right capital (a whole-word, case-insensitive match). The difference
between the two conditions, over the same items, is what the correction did; a model that ignores the
conversation gets the same rate in both.

The same items show a limitation: asked cold ("What is the capital of Peru?"), how often does the model name
the right capital (`first_answers`)? And `CUTOFF_QUESTIONS` show the knowledge cut-off: questions whose answer
changes with time, answered from training data of a fixed date.
"""

from __future__ import annotations

import random
import re
from typing import Sequence

from hfrepro import data

CORRECTION = "That's not right. The capital of {country} is {capital}. "
FOLLOW_UP = "Now write one sentence inviting a friend to visit the capital of {country}."
QUESTION = "What is the capital of {country}?"
WRONG = "The capital of {country} is {wrong}."
CUTOFF_QUESTIONS = (
    "What is today's date?",
    "Who won the most recent FIFA World Cup?",
    "What is the newest version of the Python programming language?",
    "Who is the current Secretary-General of the United Nations?",
    "What were the biggest news stories this week?",
)


def capital_pairs() -> list[tuple[str, str]]:
    """(country, capital) from both capital sections of questions-words, every split; countries with two
    different capitals in the file are left out. Sorted by country."""
    seen: dict[str, set[str]] = {}
    ds = data.load("questions-words")
    for split in ds:
        for r in ds[split]:
            if r["section"].startswith("capital"):
                for cap, country in ((r["a"], r["b"]), (r["c"], r["d"])):
                    seen.setdefault(country, set()).add(cap)
    return sorted((c, next(iter(caps))) for c, caps in seen.items() if len(caps) == 1)


def items(pairs: Sequence[tuple[str, str]], n: int, seed: int) -> list[dict]:
    """`n` items drawn with `seed`; each item's wrong answer is another drawn item's capital."""
    rng = random.Random(seed)
    chosen = rng.sample(list(pairs), min(n, len(pairs)))
    out = []
    for i, (country, capital) in enumerate(chosen):
        wrong = chosen[(i + 1 + rng.randrange(len(chosen) - 1)) % len(chosen)][1] if len(chosen) > 1 else "Paris"
        out.append({"country": country, "capital": capital, "wrong": wrong})
    return out


def conversation(item: dict, corrected: bool) -> list[dict]:
    follow = (CORRECTION.format(**item) if corrected else "") + FOLLOW_UP.format(**item)
    return [{"role": "user", "content": QUESTION.format(**item)},
            {"role": "assistant", "content": WRONG.format(**item)},
            {"role": "user", "content": follow}]


def mentions(reply: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", reply, flags=re.IGNORECASE) is not None


def score(item: dict, reply: str) -> dict:
    return {"uses_correction": mentions(reply, item["capital"]), "repeats_wrong": mentions(reply, item["wrong"])}
