"""REPORT.md: the claims table first (every verdict from a number this run measured), then time and memory,
then each stage's section."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import os
import platform
from pathlib import Path

from hfrepro import __version__, runtime
from hfrepro.claims import NOT_RUN
from hfrepro.fsutil import atomic_write_text
from hfrepro.report import md_table
from hfrepro.reproduce.plan import STAGES, available

# A stage the walk has chosen but not reached yet, in the partial REPORT.md written after every stage.
NOT_YET = {"status": "not run yet", "markdown": "_Not run yet: the walk has not reached this stage (an "
           "interrupted `hfrepro reproduce` resumes here when run again)._", "claims": {}}


def claims() -> list[tuple[str, object]]:
    """(stage name, Claim) for every claim of every stage, in road order."""
    return [(s.name, c) for s in available() for c in s.load().CLAIMS]


def verdicts(results: dict[str, dict]) -> list[dict]:
    rows = []
    for stage, c in claims():
        r = results.get(stage)
        got = (r or {}).get("claims", {}).get(c.id)
        if got is None:
            why = {None: "stage not run", "failed": "stage failed", "crashed": "stage crashed",
                   NOT_YET["status"]: "stage not run yet"}.get(
                (r or {}).get("status"), "not measured by this stage")
            rows.append({"claim": c.text, "evidence (this run)": why, "verdict": NOT_RUN})
        else:
            rows.append({"claim": c.text, "evidence (this run)": got["evidence"], "verdict": got["verdict"]})
    return rows


def _precision_text() -> str:
    p = runtime.main_job_precision()
    mixed = [s.name for s in STAGES if s.precision(p) != "fp32"]
    return "fp32" if p == "fp32" else f"{p} mixed precision on the CPU in {', '.join(mixed)} (the others fp32)"


def write_report(out: Path, budget: str, seed: int, threads: int, results: dict[str, dict]) -> Path:
    lines = [
        "# hfrepro: from word2vec to ChatGPT, reproduced on this machine", "",
        f"- budget `{budget}`, seed {seed}, {threads} torch thread(s), {_precision_text()}, hfrepro {__version__}",
        f"- machine: {platform.machine()} ({runtime.cpu_name()}), {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {_versions()}",
        f"- written {_dt.datetime.now().isoformat(timespec='seconds')}", "",
        "Every verdict below comes from a number this run measured, decided by hfrepro's claims protocol "
        "(docs/CLAIMS.md): a statistic, a threshold "
        "and a 95% interval; REPRODUCED when the interval clears the threshold, NOT REPRODUCED when it clears "
        "it on the other side, INCONCLUSIVE when it straddles it; a claim no stage measured is NOT RUN.", "",
        "Terms (bits/char, perplexity, paired bootstrap, t interval, BLEU, brevity penalty, chrF, KL, GAE, ...): "
        "docs/GLOSSARY.md.", "",
        "## Claims", "", md_table(verdicts(results)), "",
    ]
    timing = [{"stage": s.heading, "status": results[s.name].get("status"),
               "wall time (s)": results[s.name].get("wall_seconds"),
               "peak memory (GiB)": _gib(results[s.name].get("peak_rss_bytes"))}
              for s in STAGES if s.name in results]
    if timing:
        lines += ["## Time and memory", "", md_table(timing, digits=2), ""]
    for s in STAGES:
        if s.name in results:
            lines += [f"## {s.heading}", "", results[s.name].get("markdown", "").strip(), ""]
    return atomic_write_text(out / "REPORT.md", "\n".join(lines))


def _gib(n: int | None) -> float | None:
    return None if n is None else n / 2**30


def _versions() -> str:
    out = []
    for p in ("torch", "transformers", "trl", "peft", "gensim"):
        try:
            out.append(f"{p} {md.version(p)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(out)
