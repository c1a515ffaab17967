"""A 2-D PCA picture of chosen words with the analogy offsets drawn.

Each pair (man, woman), (king, queen), ... is an arrow; if the vectors encode the relation as one direction
the arrows are parallel and of similar length. The star marks a - b + c (king - man + woman), projected
with the same PCA: the analogy works when it lands next to the expected word. PCA keeps only two of the
100 dimensions, so the picture is a hint, not the measurement (that is the analogy accuracy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from hfrepro.embeddings.vectors import lookup
from hfrepro.errors import UserError
from hfrepro.report import pyplot, save_figure

DEFAULT_PAIRS = (("man", "woman"), ("king", "queen"), ("father", "mother"), ("son", "daughter"),
                 ("brother", "sister"), ("he", "she"))
DEFAULT_ANALOGY = ("king", "man", "woman")  # king - man + woman


def parse_pairs(spec: str) -> list[tuple[str, str]]:
    """'man:woman,king:queen' -> [('man', 'woman'), ('king', 'queen')]."""
    out = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part.count(":") != 1:
            raise UserError(f"bad pair {part!r}", fix="write pairs as from:to, comma-separated: man:woman,king:queen")
        a, b = (x.strip() for x in part.split(":"))
        out.append((a, b))
    if not out:
        raise UserError("no word pairs given", fix="e.g. --pairs man:woman,king:queen")
    return out


def plot(kvs: Mapping[str, object], path: str | Path, pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
         analogy: Sequence[str] | None = DEFAULT_ANALOGY, title: str = "") -> dict:
    """One panel per model. Returns {model: {"plotted": [...], "missing": [...]}}; raises if nothing to plot."""
    import numpy as np
    from sklearn.decomposition import PCA

    plt = pyplot()
    fig, axes = plt.subplots(1, len(kvs), figsize=(6.2 * len(kvs), 5.6), squeeze=False)
    info: dict = {}
    colors = plt.get_cmap("tab10")
    for ax, (name, kv) in zip(axes[0], kvs.items()):
        ok = [(a, b) for a, b in pairs if lookup(kv, a) and lookup(kv, b)]
        missing = sorted({w for a, b in pairs for w in (a, b) if not lookup(kv, w)})
        words = list(dict.fromkeys(w for p in ok for w in p))
        star = None
        if analogy and all(lookup(kv, w) for w in analogy):
            a, b, c = (kv.get_vector(lookup(kv, w), norm=True) for w in analogy)
            star = a - b + c
            star = star / np.linalg.norm(star)
        if len(words) < 2:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{name}: fewer than two pairs in the vocabulary", ha="center")
            info[name] = {"plotted": words, "missing": missing}
            continue
        M = np.stack([kv.get_vector(lookup(kv, w), norm=True) for w in words])
        pca = PCA(n_components=2, random_state=0).fit(M)
        P = dict(zip(words, pca.transform(M)))
        for k, (a, b) in enumerate(ok):
            col = colors(k % 10)
            ax.annotate("", xy=P[b], xytext=P[a], arrowprops=dict(arrowstyle="->", color=col, lw=1.6))
            for w in (a, b):
                ax.scatter(*P[w], color=col, s=18)
                ax.annotate(w, P[w], textcoords="offset points", xytext=(4, 4), fontsize=10)
        if star is not None:
            s2 = pca.transform(star[None])[0]
            ax.scatter(*s2, marker="*", s=180, color="black", zorder=5)
            ax.annotate(f"{analogy[0]} − {analogy[1]} + {analogy[2]}", s2, textcoords="offset points",
                        xytext=(6, -12), fontsize=9)
        ev = pca.explained_variance_ratio_
        ax.set_title(f"{name}  (PCA: {ev[0]:.0%} + {ev[1]:.0%} of the variance of these words)", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        info[name] = {"plotted": words, "missing": missing}
    if all(len(v["plotted"]) < 2 for v in info.values()):
        plt.close(fig)
        raise UserError("none of the word pairs is in the vocabulary: nothing to plot",
                        fix="choose words the model knows (hfrepro embeddings similar WORD checks one)")
    fig.suptitle(title or "word vectors in 2-D (PCA): arrows are the pair offsets; ★ = a − b + c", fontsize=11)
    save_figure(fig, path)
    return info
