"""How the stage's neural settings were chosen: validation bits per character of one short GPT or LSTM run.

    .venv/bin/python bench/lm_tune.py gpt B=8 V=4096 tokens=350000
    .venv/bin/python bench/lm_tune.py lstm B=8 d=192 tokens=520000

Keys: tokens (training tokens), B (batch), T (block), lr, L (layers), d (width), V (BPE vocabulary).
Scores the first 20,000 characters of *validation* speeches (the test text is never used for choices) and
appends a JSON line to bench/results/lm_tune.jsonl (a scratch log, not committed).
"""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    from hfrepro.lm.scoring import load_lm, neural_bits
    from hfrepro.lm.text import load_corpus
    from hfrepro.recipes import clm, lstm

    kind, p = sys.argv[1], dict(a.split("=") for a in sys.argv[2:])
    tokens, B, T = int(p.get("tokens", 250000)), int(p.get("B", 16)), int(p.get("T", 128))
    lr, V = float(p.get("lr", 3e-3)), int(p.get("V", 2048))
    steps = tokens // (B * T)
    with tempfile.TemporaryDirectory() as out:
        # the recipe at its default budget, with this run's sizes; no checkpoints, no held-out test scoring
        argv = ["--vocab_size", V, "--train_max_chars", int(tokens * 3.5), "--block_size", T, "--eval_max_chars",
                2000, "--val_max_chars", 10000, "--max_steps", steps, "--per_device_train_batch_size", B,
                "--learning_rate", lr, "--warmup_steps", steps // 10, "--logging_steps", 20, "--eval_strategy", "no",
                "--save_strategy", "no", "--seed", 0, "--disable_tqdm", "true", "--output_dir", out]
        if kind == "gpt":
            d = int(p.get("d", 128))
            m = clm.cli([str(x) for x in argv + ["--n_layer", p.get("L", 2), "--n_embd", d, "--n_head",
                                                 max(2, d // 64)]])
        else:
            m = lstm.cli([str(x) for x in argv + ["--d_model", p.get("d", 256), "--n_layers", p.get("L", 1)]])
        model, tok, _ = load_lm(out)
        r = neural_bits(model, tok, load_corpus("shakespeare").documents("validation", 20000, seed=0), T)
    row = {"model": kind, **p, "steps": steps, "parameters": m["parameters"], "val_bpc": r["bits_per_character"]}
    print(json.dumps(row))
    res = Path(__file__).resolve().parent / "results"
    res.mkdir(exist_ok=True)
    with open(res / "lm_tune.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
