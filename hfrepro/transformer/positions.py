"""Positional encodings: how a Transformer knows the order of its tokens.

Attention itself ignores order (it is a weighted sum over a set), so a vector that depends on the position is
added to each token's embedding:

    sinusoidal (Vaswani et al. 2017, the Transformer translator):  PE[p, 2i] = sin(p / 10000^(2i/d)),
                                                                    PE[p, 2i+1] = cos(p / 10000^(2i/d))
    learned (GPT-2, BERT): a trainable table, one row per position, learned with the rest of the model.
    rotary (RoFormer; Llama, and stage 2's GPT): nothing is added; each pair (2i, 2i+1) of a query's and a key's
        numbers is rotated by the angle p * theta_i, theta_i = base^(-2i/d_head), so their dot product depends on
        the distance between the two positions. Its table of sin and cos is the sinusoidal one at d_head.

`plot_positions` draws both tables and the cosine similarity between positions: nearby positions look alike
in both, the sinusoids by construction, the learned rows only because training made them so.
"""

from __future__ import annotations

from hfrepro.report import pyplot, save_figure


def sinusoidal(n_positions: int, d_model: int, base: float = 10000.0):
    """The Transformer's table (n_positions x d_model), numpy; at d_head and the rotary base, a rotary model's
    angles."""
    import numpy as np

    pos = np.arange(n_positions)[:, None]
    rate = 1.0 / np.power(base, np.arange(0, d_model, 2) / d_model)
    pe = np.zeros((n_positions, d_model))
    pe[:, 0::2] = np.sin(pos * rate)
    pe[:, 1::2] = np.cos(pos * rate[: d_model // 2])
    return pe


def rope_base(config) -> float:
    """A rotary model's base (rope_theta; 10000 unless its config says otherwise)."""
    rope = getattr(config, "rope_parameters", None) or {}
    return float(rope.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0)


def learned(model):
    """A GPT-2's (wpe) or BERT's (position_embeddings) learned table as numpy, or None."""
    for name in ("transformer.wpe.weight", "bert.embeddings.position_embeddings.weight",
                 "embeddings.position_embeddings.weight"):
        p = dict(model.named_parameters()).get(name)
        if p is not None:
            return p.detach().float().numpy()
    return None


def cosine(table):
    import numpy as np

    t = table / (np.linalg.norm(table, axis=1, keepdims=True) + 1e-12)
    return t @ t.T


def neighbour_similarity(table, gap: int = 1) -> float:
    """Mean cosine similarity of positions p and p + gap."""
    c = cosine(table)
    return float(sum(c[p, p + gap] for p in range(len(c) - gap)) / (len(c) - gap))


def plot_positions(tables: dict, path) -> None:
    """For each named table: the table (positions x dimensions) and the positions' cosine similarity."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(tables), figsize=(4.2 * len(tables), 7.5), squeeze=False)
    for j, (name, t) in enumerate(tables.items()):
        im = axes[0][j].imshow(t, aspect="auto", cmap="RdBu", vmin=-abs(t).max(), vmax=abs(t).max())
        axes[0][j].set(title=name, xlabel="dimension", ylabel="position")
        fig.colorbar(im, ax=axes[0][j], fraction=0.046)
        im = axes[1][j].imshow(cosine(t), cmap="viridis", vmin=-1, vmax=1)
        axes[1][j].set(title="cosine similarity of positions", xlabel="position", ylabel="position")
        fig.colorbar(im, ax=axes[1][j], fraction=0.046)
    save_figure(fig, path)
