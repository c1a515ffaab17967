"""hfrepro's few-shot evaluator against lm-evaluation-harness: the same model object, the same task files, the
same prompts, in the same process — agreement of the scores and scored prompts per second (ratio).

    .venv/bin/python bench/fewshot.py                                   # capital_mc + uppercase, 0/3/8 shots
    .venv/bin/python bench/fewshot.py --tasks capital_mc --shots 0,3 --limit 20
    .venv/bin/python bench/fewshot.py --tasks uppercase,capital_mc --shots 0,3 --limit 8   # the smallest
    HFREPRO_THREADS=2 .venv/bin/python bench/fewshot.py --batch_size 32

Each task is scored `--repeats` times by both, alternating which goes first (A, B, B, A, ...). Speed is the
ratio lm-eval time / hfrepro time, in wall time and in CPU time of this process (on a machine shared with other
jobs the CPU ratio is the steadier one), read two ways: "fastest" (fastest lm-eval run / fastest hfrepro run)
and "median pair" (the median within-pair ratio); per task and for all tasks together. Issue 19's target: the
all-tasks ratio >= 3x. Agreement target: identical accuracy for every task and shot count. hfrepro's
task files are lm-eval task YAMLs: lm-eval reads hfrepro/fewshot/tasks as it is (`TaskManager(include_path=
...)`, `hfrepro.fewshot.lmeval.run_lm_eval`) and scores them with `HFLM` wrapping the same loaded model.
Writes bench/results/fewshot.json and prints a Markdown table.
"""

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pairs import alternate, ratios  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


TARGET = 3.0
SPEEDUPS = ("speedup_wall_fastest", "speedup_wall_median_pair", "speedup_cpu_fastest", "speedup_cpu_median_pair")


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process) of fn()."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def speedups(runs: list[dict]) -> dict:
    """lm-eval time / hfrepro time over alternated runs [{"ours": (wall, cpu), "theirs": (wall, cpu)}, ...]."""
    out = {"hfrepro_fastest_s": round(min(r["ours"][0] for r in runs), 2),
           "lm_eval_fastest_s": round(min(r["theirs"][0] for r in runs), 2)}
    for j, clock in enumerate(("wall", "cpu")):
        fastest, median_pair = ratios([r["ours"][j] for r in runs], [r["theirs"][j] for r in runs])
        out[f"speedup_{clock}_fastest"], out[f"speedup_{clock}_median_pair"] = round(fastest, 2), round(median_pair, 2)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tasks", default="capital_mc,uppercase")
    ap.add_argument("--shots", default="0,3,8")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("HFREPRO_THREADS", 0)) or os.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench/results/fewshot.json")
    a = ap.parse_args()

    import torch

    from hfrepro.fewshot.evaluator import evaluate
    from hfrepro.fewshot.lmeval import run_lm_eval
    from hfrepro.fewshot.tasks import load_tasks
    from hfrepro.models import load_causal_lm, load_tokenizer
    from hfrepro.report import md_table

    torch.set_num_threads(a.threads)
    shots = [int(s) for s in a.shots.split(",")]
    tok, model = load_tokenizer(a.model), load_causal_lm(a.model)
    model.eval()
    with torch.no_grad():                      # warm-up, so neither side pays first-call costs
        model(torch.tensor([tok("warm up").input_ids]))
    for t in load_tasks(a.tasks):              # ... nor the import of `datasets` (lm-eval imports it too)
        t.splits()
    rows, detail, runs = [], {}, {}
    for task in a.tasks.split(","):
        def score(who):  # (result, wall s, CPU s); lm-eval's wall time is its simple_evaluate calls, as before
            out, wall, cpu = _timed(lambda: evaluate(model, [task], shots, tokenizer=tok, limit=a.limit,
                                                     batch_size=a.batch_size, model_name=a.model, progress=False)
                                    if who == "ours" else
                                    run_lm_eval(model, tok, task, shots, limit=a.limit, batch_size=a.batch_size))
            return out, (wall if who == "ours" else out["seconds"]), cpu

        mine, lm_eval = alternate(a.repeats, lambda r: score("ours"), lambda r: score("theirs"))
        runs[task] = [{"ours": x[1:], "theirs": y[1:]} for x, y in zip(mine, lm_eval)]
        print(f"[bench] {task}: hfrepro {[round(x[1], 2) for x in mine]} s, lm-eval "
              f"{[round(y[1], 2) for y in lm_eval]} s", flush=True)
        ours, theirs = mine[-1][0], lm_eval[-1][0]
        metric = ours.tasks[task]["metric"]
        for k in shots:
            x, y = ours.accuracy(task, k), theirs["scores"][k][metric]
            rows.append({"task": task, "shots": k, "metric": metric, "n": ours.scores[task][k]["n"],
                         "hfrepro": x, "lm-eval": float(y), "diff (points)": round(100 * (x - float(y)), 2)})
        detail[task] = {"examples": ours.examples, **speedups(runs[task])}
    together = [{who: tuple(sum(runs[t][r][who][j] for t in runs) for j in (0, 1)) for who in ("ours", "theirs")}
                for r in range(a.repeats)]
    detail["all tasks"] = {"examples": sum(d["examples"] for d in detail.values()), **speedups(together)}
    agree = all(r["diff (points)"] == 0 for r in rows)
    summary = {"model": a.model, "limit": a.limit, "shots": shots, "batch_size": a.batch_size,
               "threads": a.threads, "cpu_count": os.cpu_count(), "machine": platform.machine(),
               "load_average": os.getloadavg(), "scores": rows, "speed": detail, "identical_accuracy": agree,
               "repeats": a.repeats, "target_speedup": TARGET, "runs": runs,
               "meets_target": agree and min(detail["all tasks"][k] for k in SPEEDUPS) >= TARGET,
               "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(md_table(rows, digits=3))
    print(md_table([{"task": t, **d} for t, d in detail.items()], digits=2))
    print(f"target: all tasks >= {TARGET}x on every speed-up column with identical accuracy: "
          f"{'met' if summary['meets_target'] else 'NOT met'}")
    print(f"identical accuracy: {agree}; {a.threads} thread(s), load average {os.getloadavg()[0]:.1f} "
          f"(timings on a busy machine are inflated); -> {a.out}")


if __name__ == "__main__":
    main()
