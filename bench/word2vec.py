"""word2vec training speed: words/s of CBOW and skip-gram, and the recipe's overhead over calling gensim
directly (target <= 5%).

    .venv/bin/python bench/word2vec.py                       # 1M tokens of the English corpus, 2 epochs
    .venv/bin/python bench/word2vec.py --max_tokens 0 --epochs 1 --workers 1,2 --repeats 3

Both sides get the same tokenised sentences and settings (100 dimensions, window 5, negative 5, min_count 5,
sample 1e-3, seed 0). "gensim" is `Word2Vec(sentences, ..., epochs=E)`: one call that counts the vocabulary
and trains. "recipe" is recipes/word2vec.py's own `new_model` + `train_epochs`: counting,
`build_vocab_from_freq`, one `train()` call per epoch with a checkpoint (`model.save`) after each and the token
progress bar. Each pair runs `--repeats` times, alternating which goes first; the table shows medians.
Writes bench/results/word2vec.json. CPU seconds (process time, all threads) are reported too: on a shared,
loaded machine they are far steadier than wall time, and an overhead is extra work either way. Quote wall-time
words/s only from a quiet machine.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="english")
    ap.add_argument("--max_tokens", type=int, default=1_000_000, help="0: the whole corpus")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", default="1,2", help="gensim worker threads to measure, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench/results/word2vec.json")
    a = ap.parse_args()

    from gensim.models import Word2Vec
    from tqdm import tqdm

    from hfrepro.embeddings.text import load_corpus
    from hfrepro.embeddings.vectors import quiet_gensim
    from hfrepro.recipes.word2vec import ScriptArguments, new_model, train_epochs
    from hfrepro.report import md_table

    class Run:  # where train_epochs puts its checkpoints and log rows (a temporary folder; no log)
        def __init__(self, path):
            self.path = Path(path)

        def log(self, row):
            pass

    quiet_gensim()
    corpus = load_corpus(a.corpus, max_tokens=a.max_tokens, seed=0)
    sents, words = corpus.sentences, corpus.tokens
    print(f"corpus {a.corpus}: {words:,} tokens, {len(sents):,} sentences; {a.epochs} epoch(s), "
          f"{a.repeats} repeat(s); {os.cpu_count()} cores", flush=True)

    def direct(mode, w):
        t, c = time.perf_counter(), time.process_time()
        Word2Vec(sents, vector_size=100, window=5, min_count=5, sg=int(mode == "skipgram"), hs=0, negative=5,
                 sample=1e-3, seed=0, workers=w, epochs=a.epochs)
        return time.perf_counter() - t, time.process_time() - c

    def recipe(mode, w):
        args = ScriptArguments(workers=w, epochs=a.epochs)
        with tempfile.TemporaryDirectory() as d, open(os.devnull, "w") as null:
            bar = tqdm(total=a.epochs * words, file=null, mininterval=1.0)
            t, c = time.perf_counter(), time.process_time()
            counts = corpus.counts()
            model, state = new_model(args, 0, mode, corpus, counts)
            train_epochs(model, state, sents, args, Run(d), bar)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            bar.close()
        return dt, dc

    rows, raw = [], []
    for mode in ("cbow", "skipgram"):
        for w in (int(x) for x in a.workers.split(",")):
            td, tr = [], []
            for r in range(a.repeats):
                first, second = (direct, recipe) if r % 2 == 0 else (recipe, direct)
                x, y = first(mode, w), second(mode, w)
                (td, tr)[first is recipe].append(x)
                (td, tr)[second is recipe].append(y)
            d, rcp = (statistics.median(x[0] for x in td), statistics.median(x[0] for x in tr))
            dc, rc = (statistics.median(x[1] for x in td), statistics.median(x[1] for x in tr))
            rec = {"mode": mode, "workers": w, "gensim_s": round(d, 2), "recipe_s": round(rcp, 2),
                   "gensim_cpu_s": round(dc, 2), "recipe_cpu_s": round(rc, 2),
                   "gensim_words_per_s": round(a.epochs * words / d),
                   "recipe_words_per_s": round(a.epochs * words / rcp),
                   "overhead_wall_pct": round(100 * (rcp / d - 1), 1),
                   "overhead_cpu_pct": round(100 * (rc / dc - 1), 1),
                   "gensim_runs_s": [round(x[0], 2) for x in td], "recipe_runs_s": [round(x[0], 2) for x in tr],
                   "gensim_runs_cpu_s": [round(x[1], 2) for x in td], "recipe_runs_cpu_s": [round(x[1], 2) for x in tr]}
            raw.append(rec)
            rows.append({k: rec[k] for k in ("mode", "workers", "gensim_words_per_s", "recipe_words_per_s",
                                              "gensim_s", "recipe_s", "overhead_wall_pct", "gensim_cpu_s",
                                              "recipe_cpu_s", "overhead_cpu_pct")})
            print(f"{mode} workers={w}: gensim {d:.2f}s ({dc:.2f} CPU-s), recipe {rcp:.2f}s ({rc:.2f} CPU-s): "
                  f"overhead {rec['overhead_wall_pct']:+.1f}% wall, {rec['overhead_cpu_pct']:+.1f}% CPU", flush=True)
    load = os.getloadavg()
    summary = {"corpus": a.corpus, "tokens": words, "epochs": a.epochs, "repeats": a.repeats,
               "cpu_count": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in load],
               "python": platform.python_version(), "target_overhead_pct": 5.0,
               "max_overhead_wall_pct": max(r["overhead_wall_pct"] for r in raw),
               "max_overhead_cpu_pct": max(r["overhead_cpu_pct"] for r in raw), "results": raw}
    summary["meets_overhead_target_wall"] = summary["max_overhead_wall_pct"] <= 5.0
    summary["meets_overhead_target_cpu"] = summary["max_overhead_cpu_pct"] <= 5.0
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print(md_table(rows, digits=2))
    print(f"words/s = {a.epochs} x {words:,} corpus words / seconds (vocabulary + training, medians of "
          f"{a.repeats}); load average at the end {load[0]:.1f} on {os.cpu_count()} cores -> {out}")


if __name__ == "__main__":
    main()
