"""Self-attention maps of real models, per layer and head: what each token looks at.

    att = gpt_attention(model, tok, "To be, or not to be, that is the question.")   # causal: lower triangle
    att = encoder_attention(bert, bert_tok, "The bank of the river.")                # bidirectional
    att = translator_attention(marian, tok, "Select the cells.")                     # encoder, decoder, cross
    plot_attention(att["maps"], att["query"], att["key"], "GPT", "gpt.png")

An attention map of one head is a (queries x keys) matrix whose rows sum to 1: row i is the weight token i gives
every token when it builds its new vector. A GPT's rows have weight only on tokens at or before i (the causal
mask: the future is invisible); BERT's encoder looks both ways. `future_mass` measures it: the total weight on
later tokens, averaged over rows, layers and heads (0 for a causal model, exactly).

The maps come from the models' own `output_attentions=True`, with the eager attention implementation (the
fused kernels do not return weights). Tokens that matplotlib's default font cannot draw (Hangul) are labelled
by their position; the Markdown tables carry the text.
"""

from __future__ import annotations

from hfrepro.report import pyplot, save_figure


def _eager(model):
    model.set_attn_implementation("eager")
    return model.eval()


def _stack(attentions) -> "list":
    """(layers, heads, queries, keys) as nested lists of floats, from a tuple of (1, heads, q, k) tensors."""
    import torch

    return torch.stack([a[0].float() for a in attentions]).tolist()


def _pieces(tokenizer, ids) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def gpt_attention(model, tokenizer, text: str, start: bool = True) -> dict:
    """A causal LM's self-attention on `text` (after its start token, as it was trained)."""
    import torch

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if start and tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    with torch.inference_mode():
        out = _eager(model)(input_ids=torch.tensor([ids]), output_attentions=True)
    toks = _pieces(tokenizer, ids)
    return {"maps": _stack(out.attentions), "query": toks, "key": toks}


def encoder_attention(model, tokenizer, text: str) -> dict:
    """A BERT-style encoder's self-attention on `text` ([CLS] ... [SEP])."""
    import torch

    enc = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        out = _eager(model)(**enc, output_attentions=True)
    toks = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return {"maps": _stack(out.attentions), "query": toks, "key": toks}


def translator_attention(model, tokenizer, text: str, max_new_tokens: int = 40) -> dict:
    """An encoder-decoder's greedy translation of `text`, and its three kinds of attention on it: encoder
    self-attention (source x source), decoder self-attention (target x target, causal) and cross-attention
    (target x source)."""
    import torch

    enc = tokenizer(text, return_tensors="pt")
    model = _eager(model)
    with torch.inference_mode():
        out_ids = model.generate(**enc, max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)[0]
        out = model(**enc, decoder_input_ids=out_ids[None], output_attentions=True)
    src = _pieces(tokenizer, enc["input_ids"][0].tolist())
    tgt = _pieces(tokenizer, out_ids.tolist())
    return {"translation": tokenizer.decode(out_ids, skip_special_tokens=True), "source": src, "target": tgt,
            "encoder": {"maps": _stack(out.encoder_attentions), "query": src, "key": src},
            "decoder": {"maps": _stack(out.decoder_attentions), "query": tgt, "key": tgt},
            "cross": {"maps": _stack(out.cross_attentions), "query": tgt, "key": src}}


def future_mass(maps) -> float:
    """Mean over layers, heads and query rows of the attention weight on keys after the query (square maps)."""
    total, n = 0.0, 0
    for layer in maps:
        for head in layer:
            for i, row in enumerate(head):
                total += sum(row[i + 1:])
                n += 1
    return total / max(1, n)


def drawable(tokens: list[str]) -> list[str]:
    """Token labels matplotlib's default font can draw: the token (spaces shown as ·), or its position."""
    return [t.replace(" ", "·").replace("\n", "⏎") if all(ord(c) < 0x0530 for c in t) else f"#{i}"
            for i, t in enumerate(tokens)]


def plot_attention(maps, query: list[str], key: list[str], title: str, path, max_layers: int = 6,
                   max_heads: int = 6) -> None:
    """A grid of attention maps: one row per layer, one column per head (the first `max_*` of each)."""
    import numpy as np

    plt = pyplot()
    a = np.asarray(maps)[:max_layers, :max_heads]
    L, H = a.shape[:2]
    q, k = drawable(query), drawable(key)
    small = len(q) <= 24 and L * H <= 16
    side = 2.6 if small else 1.7
    fig, axes = plt.subplots(L, H, figsize=(side * H + 1, side * L + 0.8), squeeze=False)
    for li in range(L):
        for hi in range(H):
            ax = axes[li][hi]
            ax.imshow(a[li, hi], cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if small or li == L - 1:
                ax.set_xticks(range(len(k)), k if small or len(k) <= 16 else [], rotation=90, fontsize=6)
            if small or hi == 0:
                ax.set_yticks(range(len(q)), q if small or len(q) <= 16 else [], fontsize=6)
            ax.set_title(f"layer {li + 1}, head {hi + 1}", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
