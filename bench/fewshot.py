"""hfrepro's few-shot evaluator against lm-evaluation-harness: the same model object, the same task files, the
same prompts, in the same process — agreement of the scores and scored prompts per second (ratio).

    .venv/bin/python bench/fewshot.py                                   # capital_mc + uppercase, 0/3/8 shots
    .venv/bin/python bench/fewshot.py --tasks capital_mc --shots 0,3 --limit 20
    .venv/bin/python bench/fewshot.py --tasks uppercase,capital_mc --shots 0,3 --limit 8   # the smallest
    HFREPRO_THREADS=2 .venv/bin/python bench/fewshot.py --batch_size 32

Speed is reported as wall time and as CPU time of this process (on a machine shared with other jobs the CPU
time ratio is the steadier one). Agreement target: identical accuracy for every task and shot count. hfrepro's
task files are lm-eval task YAMLs: lm-eval reads hfrepro/fewshot/tasks as it is (`TaskManager(include_path=
...)`, `hfrepro.fewshot.lmeval.run_lm_eval`) and scores them with `HFLM` wrapping the same loaded model.
Writes bench/results/fewshot.json and prints a Markdown table.
"""

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tasks", default="capital_mc,uppercase")
    ap.add_argument("--shots", default="0,3,8")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("HFREPRO_THREADS", 0)) or os.cpu_count())
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
    rows, detail = [], {}
    for task in a.tasks.split(","):
        t0, c0 = time.time(), time.process_time()
        ours = evaluate(model, [task], shots, tokenizer=tok, limit=a.limit, batch_size=a.batch_size,
                        model_name=a.model, progress=False)
        ours_s, ours_cpu = time.time() - t0, time.process_time() - c0
        c0 = time.process_time()
        theirs = run_lm_eval(model, tok, task, shots, limit=a.limit, batch_size=a.batch_size)
        theirs_cpu = time.process_time() - c0
        metric = ours.tasks[task]["metric"]
        for k in shots:
            x, y = ours.accuracy(task, k), theirs["scores"][k][metric]
            rows.append({"task": task, "shots": k, "metric": metric, "n": ours.scores[task][k]["n"],
                         "hfrepro": x, "lm-eval": float(y), "diff (points)": round(100 * (x - float(y)), 2)})
        ex = ours.examples
        detail[task] = {"hfrepro_seconds": round(ours_s, 2), "lm_eval_seconds": round(theirs["seconds"], 2),
                        "examples": ex, "hfrepro_examples_per_s": round(ex / ours_s, 2),
                        "lm_eval_examples_per_s": round(theirs["examples"] / theirs["seconds"], 2),
                        "speedup": round(theirs["seconds"] / ours_s, 2),
                        "hfrepro_cpu_s": round(ours_cpu, 2), "lm_eval_cpu_s": round(theirs_cpu, 2),
                        "speedup_cpu": round(theirs_cpu / ours_cpu, 2)}
    agree = all(r["diff (points)"] == 0 for r in rows)
    summary = {"model": a.model, "limit": a.limit, "shots": shots, "batch_size": a.batch_size,
               "threads": a.threads, "cpu_count": os.cpu_count(), "machine": platform.machine(),
               "load_average": os.getloadavg(), "scores": rows, "speed": detail, "identical_accuracy": agree,
               "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(md_table(rows, digits=3))
    print(md_table([{"task": t, **d} for t, d in detail.items()], digits=2))
    print(f"identical accuracy: {agree}; {a.threads} thread(s), load average {os.getloadavg()[0]:.1f} "
          f"(timings on a busy machine are inflated); -> {a.out}")


if __name__ == "__main__":
    main()
