"""Publish ONE uninterrupted default run as the project's example: docs/example-report/ (REPORT.md and every
image it links) and the headline table of README.md and README.ko.md (between the `main-job` markers).

    .venv/bin/hfrepro reproduce --out runs/reproduce-default --force     # one walk over every stage
    .venv/bin/python scripts/example_report.py runs/reproduce-default

It refuses a run that is not the default budget, or where any stage failed or was finished by an earlier walk
(the README's numbers and the example report must come from the same single run).

By hand after it: the README's (and README.ko's) sections under the table, "What this run shows" and "What does
not reproduce, and why" and the "Time" paragraph, from the new REPORT.md (every number of them is this run's),
and the intro's time line; what changed since the run before goes to docs/HISTORY.md (and HISTORY.ko.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- main-job:begin (scripts/example_report.py) -->", "<!-- main-job:end -->"


def check(run: Path) -> dict:
    t = json.loads((run / "timings.json").read_text(encoding="utf-8"))
    problems = []
    if t["budget"] != "default":
        problems.append(f"budget is {t['budget']!r}, not 'default'")
    for name, st in t["stages"].items():
        if st["status"] != "ok":
            problems.append(f"stage {name} is {st['status']}")
        if not st.get("ran_in_this_walk"):
            problems.append(f"stage {name} was finished by an earlier walk (run with --force)")
    if problems:
        sys.exit("refusing to publish " + str(run) + ": " + "; ".join(problems))
    return t


def copy_report(run: Path, dest: Path) -> list[str]:
    text = (run / "REPORT.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / "REPORT.md").write_text(text, encoding="utf-8")
    for img in images:
        (dest / img).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / img, dest / img)
    return images


def headline(run: Path, t: dict) -> str:
    stages = t["stages"]
    total = t["total_seconds"]
    jobs = t.get("jobs", 1)
    peak = (t.get("peak_side_by_side_bytes") or max(s["peak_rss_bytes"] for s in stages.values())) / 2**30
    when = dt.datetime.fromtimestamp((run / "REPORT.md").stat().st_mtime).date().isoformat()
    rows = ["| stage | wall (s) | peak (GiB) | claims and verdicts in this run |", "|---|---|---|---|"]
    claims_of = _claims_by_stage()
    for name, st in stages.items():
        res = json.loads((run / name / "result.json").read_text(encoding="utf-8"))
        cells = [f"{text}: **{res['claims'][cid]['verdict']}**" for cid, text in claims_of.get(name, [])
                 if cid in res["claims"]]
        rows.append(f"| {name} | {st['wall_seconds']:.0f} | {st['peak_rss_bytes'] / 2**30:.1f} | "
                    + "; ".join(cells).replace("|", "\\|") + " |")
    how = f"{t['threads']} torch threads" if jobs == 1 else (f"{jobs} stages side by side, {t['threads']} torch "
                                                              "thread each")
    mem = "peak memory" if jobs == 1 else "peak memory of the stages side by side (their peaks added) at most"
    intro = (f"`hfrepro reproduce` (budget `default`, seed {t.get('seed', 0)}, {how}, "
             f"{when}): **{int(total // 60)} min {int(total % 60)} s, {mem} {peak:.1f} GiB**. The evidence "
             "behind every verdict, with every table and plot, is in "
             "[docs/example-report/REPORT.md](docs/example-report/REPORT.md); this table and that report are "
             "written from the same run by `scripts/example_report.py`.")
    return "\n".join([BEGIN, intro, "", *rows, END])


def _claims_by_stage() -> dict[str, list[tuple[str, str]]]:
    sys.path.insert(0, str(REPO))
    from hfrepro.reproduce.report import claims
    out: dict[str, list[tuple[str, str]]] = {}
    for stage, c in claims():
        out.setdefault(stage, []).append((c.id, c.text))
    return out


def replace_block(readme: Path, block: str) -> None:
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        sys.exit(f"{readme} has no main-job markers")
    a, b = text.index(BEGIN), text.index(END) + len(END)
    readme.write_text(text[:a] + block + text[b:], encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", default="runs/reproduce-default")
    a = ap.parse_args()
    run = Path(a.run)
    t = check(run)
    images = copy_report(run, REPO / "docs" / "example-report")
    block = headline(run, t)
    for readme in ("README.md", "README.ko.md"):
        replace_block(REPO / readme, block)
    print(f"published {run}: docs/example-report/REPORT.md with {len(images)} images; README tables updated")
    print("by hand: the README's sections under the table (numbers from the new report) and docs/HISTORY.md")


if __name__ == "__main__":
    main()
