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
    from hfrepro.config import resolved
    from hfrepro.lm.scoring import neural_bits
    from hfrepro.lm.text import load_corpus
    from hfrepro.training import make_training_args

    kind, p = sys.argv[1], dict(a.split("=") for a in sys.argv[2:])
    tokens, B, T = int(p.get("tokens", 250000)), int(p.get("B", 16)), int(p.get("T", 128))
    lr, V = float(p.get("lr", 3e-3)), int(p.get("V", 2048))
    steps = tokens // (B * T)
    common = dict(vocab_size=V, train_max_chars=int(tokens * 3.5), block_size=T, eval_max_chars=20000,
                  val_max_chars=10000, overwrite=True)
    with tempfile.TemporaryDirectory() as out:
        if kind == "gpt":
            from hfrepro.lm import clm
            args = clm.CLMArguments(**common, n_layer=int(p.get("L", 2)), n_embd=int(p.get("d", 128)),
                                    n_head=max(2, int(p.get("d", 128)) // 64))
            targs = make_training_args(output_dir=out, max_steps=steps, per_device_train_batch_size=B,
                                       learning_rate=lr, warmup_steps=steps // 10, lr_scheduler_type="cosine",
                                       weight_decay=0.01, adam_beta2=0.98, logging_steps=20, eval_strategy="no",
                                       save_strategy="no", seed=0, disable_tqdm=True)
            m = clm.train(args, targs, resolved(args, targs), score=False)
            from transformers import AutoModelForCausalLM, AutoTokenizer
            model = AutoModelForCausalLM.from_pretrained(f"{out}/model")
        else:
            from hfrepro.lm import lstm
            args = lstm.LSTMArguments(**common, output_dir=out, d_model=int(p.get("d", 256)),
                                      n_layers=int(p.get("L", 1)), dropout=0.0, max_steps=steps, batch_size=B,
                                      learning_rate=lr, warmup_steps=steps // 10, eval_steps=10 ** 6,
                                      save_steps=10 ** 6, logging_steps=20)
            m = lstm.train(args, resolved(args), score=False, progress=False)
            from transformers import AutoTokenizer
            model = lstm.LSTMLM.from_pretrained(f"{out}/model")
        tok = AutoTokenizer.from_pretrained(f"{out}/model")
        r = neural_bits(model, tok, load_corpus("shakespeare").documents("validation", 20000, seed=0), T)
    row = {"model": kind, **p, "steps": steps, "parameters": m["parameters"], "val_bpc": r["bits_per_character"]}
    print(json.dumps(row))
    res = Path(__file__).resolve().parent / "results"
    res.mkdir(exist_ok=True)
    with open(res / "lm_tune.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
