"""Stage 9 commands: `hfrepro prefs` shows (and exports) the preference pairs the RLHF recipes train on.

The recipes themselves run as `hfrepro reward`, `hfrepro ppo`, `hfrepro rlhf` (recipes/{reward,ppo,rlhf}.py).
"""

from __future__ import annotations

import json
from collections import Counter

from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_text
from hfrepro.report import md_table
from hfrepro.rlhf.prefs import embedded_preferences


def register(sub) -> None:
    p = sub.add_parser("prefs", help="stage 9: show or export the embedded preference pairs (TRL format)",
                       description="Build the one-word-answer preference pairs from questions-words (see "
                                   "data_cards/qw-prefs.md), print counts and examples, and optionally write a "
                                   "split as JSONL in TRL's conversational preference format - the same format "
                                   "`--dataset FILE.jsonl` accepts in hfrepro reward, ppo and rlhf.")
    p.add_argument("--split", default="train", choices=["train", "validation", "test"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pairs_per_prompt", "--pairs-per-prompt", type=int, default=2)
    p.add_argument("--examples", type=int, default=5, help="example pairs to print")
    p.add_argument("--out", default=None, help="write the split here as JSONL")
    p.set_defaults(func=_prefs)


def _prefs(args) -> int:
    if args.pairs_per_prompt < 1:
        raise UserError("--pairs_per_prompt must be at least 1")
    dd = embedded_preferences(args.seed, args.pairs_per_prompt)
    print(md_table([{"split": s, "pairs": len(d), "prompts": len(set(map(repr, d["prompt"])))} for s, d in dd.items()]))
    ds = dd[args.split]
    kinds = Counter(ds["kind"])
    print(md_table([{"rejected kind": k, "pairs": n} for k, n in sorted(kinds.items())]))
    print(md_table([{"question": r["prompt"][-1]["content"], "chosen": r["chosen"][0]["content"],
                     "rejected": r["rejected"][0]["content"], "kind": r["kind"]}
                    for r in ds.select(range(min(args.examples, len(ds))))]))
    if args.out:
        atomic_write_text(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ds))
        print(f"wrote {len(ds)} pairs ({args.split}) -> {args.out}")
    return 0
