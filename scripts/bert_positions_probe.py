"""Why the BERT chapter's from-scratch model uses rotary positions: a probe where the answer is next door.

Every sequence is `a a b b c c ...` (random tokens, each written twice); 15% of positions are replaced by the
mask token and must be predicted. The twin of a masked token sits right beside it (left or right), unmasked 85%
of the time, so a model that has learnt to look at its neighbours drives the loss from log(V) towards
0.15 * log(V); a model that has not stays at log(V). Same size (2 layers x 128, 2 heads), data, optimiser,
learning rate and steps for:

- `absolute`: BertForMaskedLM, BERT's learned absolute position vectors;
- `rotary`:   RoFormerForMaskedLM, the same post-LayerNorm layers with rotary positions.

    .venv/bin/python scripts/bert_positions_probe.py --steps 300            # about 3 minutes on 2 cores

Prints the table of docs/bert.md and writes every step's loss to --out (JSON).
"""

import argparse
import math

import torch
from transformers import BertConfig, BertForMaskedLM, RoFormerConfig, RoFormerForMaskedLM

from hfrepro.fsutil import atomic_write_json

MASK = 4


def model(kind: str, vocab: int, length: int):
    common = dict(vocab_size=vocab, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=512, max_position_embeddings=length, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, tie_word_embeddings=True)
    if kind == "rotary":
        return RoFormerForMaskedLM(RoFormerConfig(embedding_size=128, **common))
    return BertForMaskedLM(BertConfig(**common))


def probe(kind: str, steps: int, vocab: int, length: int, batch: int, lr: float, seed: int) -> list[float]:
    torch.manual_seed(seed)
    m = model(kind, vocab, length)
    opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    losses = []
    for step in range(steps):
        x = torch.randint(10, vocab, (batch, length // 2)).repeat_interleave(2, dim=1)   # a a b b c c ...
        chosen = torch.rand(x.shape) < 0.15
        inputs = x.masked_fill(chosen, MASK)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 40)                                     # warm-up, then flat
        loss = m(input_ids=inputs, labels=torch.where(chosen, x, -100)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="runs/bert_positions_probe.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {k: probe(k, a.steps, a.vocab, a.length, a.batch, a.lr, a.seed) for k in ("absolute", "rotary")}
    floor = math.log(a.vocab - 10)
    print(f"log V = {floor:.2f}; solved ~ {0.15 * floor:.2f} (mean loss per 50 steps)")
    print("| positions | " + " | ".join(f"steps {i}-{i + 49}" for i in range(0, a.steps, 50)) + " |")
    print("|---|" + "---|" * len(range(0, a.steps, 50)))
    for k, losses in out.items():
        means = [sum(losses[i:i + 50]) / len(losses[i:i + 50]) for i in range(0, a.steps, 50)]
        print(f"| {k} | " + " | ".join(f"{v:.2f}" for v in means) + " |")
    atomic_write_json(a.out, {"args": vars(a), "losses": out})


if __name__ == "__main__":
    main()
