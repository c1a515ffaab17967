"""Benchmark stage 3: training tokens/second and translation sentences/second for each architecture.

Usage:
    python bench/seq2seq.py                       # the default budget's model sizes, 1 thread
    python bench/seq2seq.py --budget full         # the sizes of recipes/configs/seq2seq/<budget>.yaml
    python bench/seq2seq.py --threads 2 --steps 30 --sentences 256
    python bench/seq2seq.py --archs rnn_attention --attention_read after --out A.json   # the attention model's two
    python bench/seq2seq.py --archs rnn_attention --attention_read before --out B.json  # orders: alternate A, B, A, B

Each architecture trains `--steps` updates of the budget's batch size on real lo-help-en-ko training batches made as
the recipe makes them (length-grouped for the GRU models, at random for the Transformer), after warm-up updates
that are not timed, and translates
`--sentences` test sentences greedily and with beam 4. The updates are a bare forward/backward/AdamW step, so the
numbers are the models' own speed, without the Trainer's bookkeeping. Tokens are non-padding source + target
tokens. Writes bench/results/seq2seq.json and prints a Markdown table. Timings depend on machine load: run it on a
quiet machine and report the thread count. `train tokens/CPU-s` (tokens per second of this process's CPU time) is
less sensitive to other jobs than the wall-clock rate.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", choices=("tiny", "default", "full"), default="default")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20, help="timed training updates per architecture")
    ap.add_argument("--warmup", type=int, default=3, help="untimed updates first")
    ap.add_argument("--sentences", type=int, default=256, help="test sentences translated")
    ap.add_argument("--archs", default="rnn,rnn_attention,transformer", help="comma list of the models to time")
    ap.add_argument("--attention_read", choices=("after", "before"), default=None,
                    help="the GRU attention model's order (default: the budget's); run both alternately for a ratio")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "seq2seq.json"))
    a = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import torch
    from transformers import DataCollatorForSeq2Seq, TrainingArguments

    from hfrepro import runtime
    from hfrepro.config import RunArguments, parse_args
    from hfrepro.fsutil import atomic_write_json
    from hfrepro.recipes.seq2seq import ScriptArguments, build_model, trainable_parameters
    from hfrepro.report import md_table
    from hfrepro.seq2seq import data as s2s
    from hfrepro.seq2seq.decode import translate

    runtime.setup(seed=0, threads=a.threads)
    args, targs, _ = parse_args((ScriptArguments, TrainingArguments, RunArguments), recipe="seq2seq",
                                argv=["--budget", a.budget, *(["--attention_read", a.attention_read]
                                                               if a.attention_read else [])])
    pairs = s2s.load_pairs(args.dataset)
    tok = s2s.train_tokenizer(pairs, args.vocab_size, args.tokenizer_examples)
    train = s2s.features(tok, pairs.splits["train"], args.max_train_tokens)
    bs, n = targs.per_device_train_batch_size, a.warmup + a.steps
    grouped = s2s.length_grouped_order([len(x) + len(y) for x, y in zip(train["input_ids"], train["labels"])], bs, n,
                                       seed=0)
    shuffled = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).tolist()
    shuffled *= n * bs // len(train) + 1
    collate = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    test = list(pairs.splits["test"]["source"][: a.sentences])
    rows = []
    for arch in [x.strip() for x in a.archs.split(",") if x.strip()]:
        model = build_model(arch, tok, args, seed=0)
        if arch == "transformer":
            model.config.use_cache = True
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
        model.train()
        tokens, t0, c0 = 0, 0.0, 0.0
        order = shuffled if arch == "transformer" else grouped
        for i, idx in enumerate(order[k * bs:(k + 1) * bs] for k in range(n)):
            if i == a.warmup:
                t0, c0, tokens = time.perf_counter(), time.process_time(), 0
            batch = collate([train[j] for j in idx])
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            tokens += int(batch["attention_mask"].sum() + (batch["labels"] != -100).sum())
        train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        model.eval()
        speeds = {}
        for beams in (1, 4):
            t1 = time.perf_counter()
            translate(model, tok, test, num_beams=beams, batch_size=64)
            speeds[beams] = len(test) / (time.perf_counter() - t1)
        name = arch + (f" ({args.attention_read})" if arch == "rnn_attention" else "")
        rows.append({"arch": name, "parameters": trainable_parameters(model),
                     "train tokens/s": tokens / train_s, "train tokens/CPU-s": tokens / train_cpu,
                     "train s/update": train_s / a.steps,
                     "translate sent/s (greedy)": speeds[1], "translate sent/s (beam 4)": speeds[4]})
        print(f"{arch}: {rows[-1]}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {"benchmark": "seq2seq", "budget": a.budget, "threads": torch.get_num_threads(), "steps": a.steps,
              "batch_size": bs, "sentences": len(test), "peak_rss_gib": round(peak, 2),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
              "torch": torch.__version__, "rows": rows,
              "model_sizes": {k: getattr(args, k) for k in ("vocab_size", "embed_dim", "hidden_size", "d_model",
                                                             "layers", "heads", "ffn_dim")}}
    atomic_write_json(a.out, result)
    print(f"\nseq2seq benchmark ({a.budget} budget sizes, {result['threads']} thread(s), {result['machine']}):\n")
    print(md_table(rows, digits=1))
    print(f"peak memory {peak:.2f} GiB -> {a.out}")


if __name__ == "__main__":
    main()
