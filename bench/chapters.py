"""Wall time of each chapter that issue 18 added, run as the README's tour and docs run it: the commands a reader
types, each in its own process, at one budget, in a fresh folder (target: each chapter under three minutes on 2
cores at the default budget).

    .venv/bin/python bench/chapters.py                   # --budget default, about 10 minutes
    .venv/bin/python bench/chapters.py --budget tiny     # the commands at CI size: a minute or two

The GPT the Transformer chapter and GPT-1 read is `hfrepro clm`'s, the language-model chapter's; it is trained
first and timed as a prerequisite, not as part of either chapter. Writes bench/results/chapters-<budget>.json and
prints a Markdown table.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from hfrepro.fsutil import atomic_write_json  # noqa: E402
from hfrepro.report import md_table  # noqa: E402

TARGET_S = 180


def chapters(r: Path, budget: str) -> dict[str, list[list[str]]]:
    """{chapter: its commands}, as `hfrepro` argument lists; `r` is the folder the runs go to."""
    b = ["--budget", budget]
    return {
        "prerequisite: the lm chapter's GPT (hfrepro clm)": [["clm", *b, "--output_dir", f"{r}/clm"]],
        "inside the Transformer (tokenize, attention, positions, masked next word)": [
            ["tokenize", "--text", "The quick brown fox jumped over the lazy dog."],
            ["tokenize", "--text", "오늘 나는 치킨을 먹었다"],
            ["transformer", "attention", "--model", f"{r}/clm", "--text", "To be, or not to be", "--out",
             f"{r}/att.png"],
            ["transformer", "positions", "--model", "minilm-l6", "--out", f"{r}/positions.png"],
            ["transformer", "nextword"]],
        "BERT, whole (MLM + NSP, a task head on it and on random weights, fill-mask)": [
            ["mlm", *b, "--output_dir", f"{r}/mlm"],
            ["classify", *b, "--model_name_or_path", f"{r}/mlm", "--output_dir", f"{r}/classify"],
            ["classify", *b, "--model_name_or_path", f"{r}/mlm", "--random_init", "true", "--output_dir",
             f"{r}/classify-random"],
            ["fill-mask", "--model_name_or_path", f"{r}/mlm", "--text", "Good <mask>, my lord."]],
        "GPT-1's semi-supervised recipe (hfrepro gpt1)": [
            ["gpt1", *b, "--model_name_or_path", f"{r}/clm", "--output_dir", f"{r}/gpt1"]],
        "vanishing gradients (LSTM, tanh RNN, gradient against distance)": [
            ["lstm", "--config", "lstm/gradients", *b, "--output_dir", f"{r}/lstm-g"],
            ["lstm", "--config", "lstm/gradients", *b, "--cell", "rnn_tanh", "--tokenizer", f"{r}/lstm-g",
             "--output_dir", f"{r}/rnn"],
            ["transformer", "gradients", "--models", f"{r}/rnn", f"{r}/lstm-g", "--out", f"{r}/decay.png"]],
        "ChatGPT's behaviour (harmless, followup)": [
            ["harmless", *b, "--output_dir", f"{r}/harmless"],
            ["followup", *b, "--output_dir", f"{r}/followup"]],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="default", choices=["tiny", "default"])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("HFREPRO_THREADS", 0)) or 2)
    a = ap.parse_args()

    env = dict(os.environ, HFREPRO_THREADS=str(a.threads), OMP_NUM_THREADS=str(a.threads))
    work = Path(tempfile.mkdtemp(prefix="chapters-bench-"))
    rows, out = [], {"budget": a.budget, "threads": a.threads, "cpu_count": os.cpu_count(), "target_s": TARGET_S,
                     "chapters": {}}
    for chapter, commands in chapters(work, a.budget).items():
        t0, each = time.time(), []
        for cmd in commands:
            c0 = time.time()
            p = subprocess.run([sys.executable, "-m", "hfrepro", *cmd], env=env, capture_output=True, text=True)
            if p.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                sys.exit(f"`hfrepro {' '.join(cmd)}` failed ({p.returncode}):\n{p.stderr[-2000:]}")
            each.append(round(time.time() - c0, 1))
        wall = round(time.time() - t0, 1)
        prerequisite = chapter.startswith("prerequisite")
        out["chapters"][chapter] = {"wall_seconds": wall, "commands": [" ".join(c) for c in commands],
                                    "command_seconds": each, "meets_target": None if prerequisite else
                                    wall <= TARGET_S}
        rows.append({"chapter": chapter, "wall (s)": wall, "each command (s)": ", ".join(map(str, each)),
                     f"≤ {TARGET_S} s": "—" if prerequisite else ("yes" if wall <= TARGET_S else "**no**")})
        print(f"  {chapter}: {wall} s", flush=True)
    out.update(load_average=os.getloadavg(), date=time.strftime("%Y-%m-%d %H:%M"))
    atomic_write_json(REPO / "bench" / "results" / f"chapters-{a.budget}.json", out)
    shutil.rmtree(work, ignore_errors=True)  # the runs are only timed
    print(md_table(rows, digits=1))


if __name__ == "__main__":
    main()
