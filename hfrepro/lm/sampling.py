"""Generation is repeated next-token prediction; temperature reshapes the next-token distribution.

    generate("runs/clm", "ROMEO:", temperature=0.8, top_k=50, top_p=0.95)   # pipeline("text-generation")
    temperature_study(model, tok, docs, prompts, temperatures=(0.25, 0.5, 1.0, 1.5, 2.0))

softmax(logits / T): T -> 0 is greedy decoding (all mass on the top token, entropy 0); T = 1 is the model's
own distribution; T > 1 flattens it towards uniform (entropy -> log2 |V|). The study measures both sides:
the mean entropy (bits) of the tempered next-token distribution over held-out positions, and distinct-n
(Li et al. 2016: distinct n-grams / all n-grams, over the words of the sampled continuations).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from hfrepro.errors import UserError
from hfrepro.lm.data import start_id
from hfrepro.models import load_causal_lm, load_tokenizer, resolve
from hfrepro.report import pyplot, save_figure


def load_for_generation(name: str):
    """(model, tokenizer) of a causal LM: an embedded name, a model folder, or a run folder."""
    path = resolve(name)
    cfg = Path(path) / "config.json"
    if cfg.is_file() and '"hfrepro-' in cfg.read_text(encoding="utf-8"):
        raise UserError(f"{name} is an hfrepro n-gram or LSTM model: it scores text (hfrepro perplexity) but "
                        "has no `generate`, which transformers' text-generation pipeline needs",
                        fix="use a GPT run folder (runs/clm) or smollm2-135m-instruct")
    return load_causal_lm(path), load_tokenizer(path)


def text_pipeline(model, tokenizer):
    from transformers import pipeline
    return pipeline("text-generation", model=model, tokenizer=tokenizer, device=model.device)


def generate(model, tokenizer, prompt: str, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             max_new_tokens: int = 50, num_return_sequences: int = 1, seed: int = 0, chat: bool = False,
             pipe=None) -> list[str]:
    """Sample continuations with `pipeline("text-generation")` (`pipe`, or one built for the model).
    temperature 0 means greedy decoding; top_k 0 and top_p 1 switch those filters off."""
    from transformers import set_seed

    if temperature < 0:
        raise UserError(f"temperature must be >= 0, got {temperature}", fix="0 is greedy; 1 is the model's own")
    if not 0 < top_p <= 1:
        raise UserError(f"top-p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise UserError(f"top-k must be >= 0 (0 switches it off), got {top_k}")
    if chat and not getattr(tokenizer, "chat_template", None):
        raise UserError("--chat needs a model with a chat template", fix="drop --chat for this model")
    pipe = pipe or text_pipeline(model, tokenizer)
    greedy = temperature == 0
    kw = dict(max_new_tokens=max_new_tokens, do_sample=not greedy, pad_token_id=tokenizer.pad_token_id)
    if not greedy:
        kw.update(temperature=temperature, top_k=top_k or None, top_p=top_p,
                  num_return_sequences=num_return_sequences)
    set_seed(seed)
    if chat:
        outs = pipe([{"role": "user", "content": prompt}], **kw)
        return [o["generated_text"][-1]["content"] for o in outs]
    outs = pipe(prompt, return_full_text=False, **kw)
    return [o["generated_text"] for o in outs]


# --- the temperature study ------------------------------------------------------------------------------

def next_token_logits(model, tokenizer, docs: Sequence[str], max_tokens: int, max_length: int):
    """Logits at up to `max_tokens` positions of the held-out documents (each from its start token)."""
    import torch

    s = start_id(tokenizer)
    out, n = [], 0
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    with torch.inference_mode():
        for ids in tokenizer(list(docs), add_special_tokens=False, verbose=False)["input_ids"]:
            x = torch.tensor(([s] + ids)[:max_length])[None].to(device)
            logits = model(input_ids=x).logits[0].float().cpu()
            out.append(logits[: max_tokens - n])
            n += len(out[-1])
            if n >= max_tokens:
                break
    model.train(was)
    return torch.cat(out)


def tempered_entropy_bits(logits, temperature: float) -> float:
    """Mean entropy (bits) of softmax(logits / T) over the rows; T = 0 is greedy (entropy 0)."""
    import torch

    if temperature == 0:
        return 0.0
    logp = torch.log_softmax(logits.double() / temperature, dim=-1)
    return float(-(logp.exp() * logp).sum(-1).mean() / math.log(2))


def distinct_n(texts: Sequence[str], n: int) -> float:
    grams = [tuple(w[i:i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def temperature_study(model, tokenizer, docs: Sequence[str], prompts: Sequence[str],
                      temperatures: Sequence[float], entropy_tokens: int = 512, max_length: int = 128,
                      samples_per_prompt: int = 4, max_new_tokens: int = 40, seed: int = 0,
                      sample: bool = True) -> list[dict]:
    """One row per temperature: entropy of the next-token distribution (bits), distinct-1/2 of samples."""
    logits = next_token_logits(model, tokenizer, docs, entropy_tokens, max_length)
    pipe = text_pipeline(model, tokenizer) if sample else None
    rows = []
    for T in temperatures:
        row = {"temperature": T, "entropy_bits": tempered_entropy_bits(logits, T), "positions": len(logits)}
        if sample:
            texts = []
            for k, p in enumerate(prompts):
                texts += generate(model, tokenizer, p, temperature=T, max_new_tokens=max_new_tokens,
                                  num_return_sequences=1 if T == 0 else samples_per_prompt, seed=seed + k,
                                  pipe=pipe)
            row.update({"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
                        "samples": len(texts), "example": texts[0]})
        rows.append(row)
    return rows


def plot_study(studies: dict[str, list[dict]], path) -> None:
    """Entropy and distinct-n against temperature, one line per model."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, rows in studies.items():
        ts = [r["temperature"] for r in rows]
        line, = axes[0].plot(ts, [r["entropy_bits"] for r in rows], marker="o", label=name)
        if rows and "distinct_2" in rows[0]:
            c = line.get_color()
            axes[1].plot(ts, [r["distinct_1"] for r in rows], marker="o", linestyle="--", color=c,
                         label=f"{name}: distinct-1")
            axes[1].plot(ts, [r["distinct_2"] for r in rows], marker="s", color=c, label=f"{name}: distinct-2")
    axes[0].set(xlabel="temperature T", ylabel="entropy of softmax(logits/T), bits",
                title="Next-token entropy on held-out text")
    axes[1].set(xlabel="temperature T", ylabel="distinct n-grams / n-grams", title="Diversity of samples",
                ylim=(0, 1.05))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)
