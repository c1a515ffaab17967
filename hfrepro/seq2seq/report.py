"""The comparison of the three models: results table, BLEU by source length (table + the Bahdanau-style plot),
the attention heat map of one sentence, and the check of the claim "attention holds BLEU up on long
sentences where plain seq2seq falls". Reads and writes files only: no model is loaded here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hfrepro.fsutil import atomic_write_text
from hfrepro.report import fmt, md_table, pyplot, save_figure
from hfrepro.seq2seq import scoring
from hfrepro.seq2seq.data import n_words

LABELS = {"rnn": "GRU enc-dec (no attention)", "rnn_attention": "GRU + Bahdanau attention",
          "transformer": "Transformer"}
COLORS = {"rnn": "tab:red", "rnn_attention": "tab:blue", "transformer": "tab:green"}
MIN_LONG = 50  # fewer long test sentences than this: the claim is not measurable


def read_outputs(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(sources, references, hypotheses) of an arch's test translations."""
    return tuple(scoring.read_lines(folder / f"{name}.txt") for name in ("src", "ref", "hyp"))


# --- the claim ----------------------------------------------------------------------------------------------

def attention_claim(root: Path, results: dict, tokenize: str, long_from: int) -> dict:
    """Compare rnn and rnn_attention on short (< long_from source words) and long test sentences.

    Held when (1) the attention model's BLEU on long sentences is higher than the plain model's, (2) the
    difference is significant (paired bootstrap, p < 0.05), (3) the attention model keeps a larger share
    of its short-sentence BLEU on long sentences (it falls less with length), and (4) chrF on long sentences
    agrees (higher with attention). (4) was added after the first default-budget run, where the BLEU gap came
    from the brevity penalty alone (the plain model stopped early) while chrF was lower with attention."""
    if not {"rnn", "rnn_attention"} <= set(results):
        return {"held": None, "evidence": "needs both rnn and rnn_attention runs"}
    src, ref, hyp_rnn = read_outputs(root / "rnn")
    src2, _, hyp_att = read_outputs(root / "rnn_attention")
    if src != src2:
        return {"held": None, "evidence": "rnn and rnn_attention were scored on different test sentences"}
    short, long = scoring.split_long(src, long_from)
    pick = lambda xs, idx: [xs[i] for i in idx]  # noqa: E731
    s, detail = {}, {}
    for name, hyp in (("rnn", hyp_rnn), ("rnn_attention", hyp_att)):
        sc = {k: scoring.score(pick(hyp, idx), pick(ref, idx), tokenize) if idx else None
              for k, idx in (("short", short), ("long", long))}
        s[name] = {k: (v["bleu"] if v else None) for k, v in sc.items()}
        detail[name] = {f"{k}_{m}": (v[m] if v else None) for k, v in sc.items()
                        for m in ("chrf", "brevity_penalty", "precisions")}
        detail[name].update({f"{k}_length_ratio": (v["sys_len"] / max(1, v["ref_len"]) if v else None)
                             for k, v in sc.items()})
    out = {"long_from_words": long_from, "n_short": len(short), "n_long": len(long), "bleu": s, "detail": detail}
    if len(long) < MIN_LONG:
        out.update(held=None, evidence=f"only {len(long)} test sentences of {long_from}+ source words "
                                       f"(need {MIN_LONG}): too few to measure")
        return out
    boot = scoring.paired_bootstrap(pick(hyp_rnn, long), pick(hyp_att, long), pick(ref, long), tokenize)
    ratio = {k: (v["long"] / v["short"] if v["short"] else None) for k, v in s.items()}
    better = s["rnn_attention"]["long"] > s["rnn"]["long"]
    significant = boot["p_value"] is not None and boot["p_value"] < 0.05
    holds_up = (ratio["rnn_attention"] is not None and ratio["rnn"] is not None
                and ratio["rnn_attention"] > ratio["rnn"])
    chrf_agrees = detail["rnn_attention"]["long_chrf"] > detail["rnn"]["long_chrf"]
    held = bool(better and significant and holds_up and chrf_agrees)
    out.update(held=held, p_value=boot["p_value"], ratio_long_short=ratio, bootstrap=boot, chrf_agrees=chrf_agrees,
               evidence=(f"BLEU on {long_from}+ word sources (n={len(long)}): no attention {s['rnn']['long']:.2f}, "
                         f"attention {s['rnn_attention']['long']:.2f} (paired bootstrap p={boot['p_value']:.3f}); "
                         f"on shorter sources (n={len(short)}): {s['rnn']['short']:.2f} vs "
                         f"{s['rnn_attention']['short']:.2f}; long/short BLEU ratio {fmt(ratio['rnn'], 2)} vs "
                         f"{fmt(ratio['rnn_attention'], 2)}. Also on long sources: chrF "
                         f"{detail['rnn']['long_chrf']:.2f} vs {detail['rnn_attention']['long_chrf']:.2f}, output/"
                         f"reference length {detail['rnn']['long_length_ratio']:.2f} vs "
                         f"{detail['rnn_attention']['long_length_ratio']:.2f}"))
    return out


def claim_sentence(claim: dict) -> str:
    if claim.get("held") is None:
        return f"**Attention effect: not measured** ({claim['evidence']})."
    b = claim["bleu"]
    if claim["held"]:
        return ("**The attention effect reproduces here:** on long sentences the attention model scores "
                f"{b['rnn_attention']['long']:.2f} BLEU against {b['rnn']['long']:.2f} without attention "
                f"(p={claim['p_value']:.3f}), and it keeps more of its short-sentence score "
                f"({fmt(claim['ratio_long_short']['rnn_attention'], 2)} vs "
                f"{fmt(claim['ratio_long_short']['rnn'], 2)}).")
    reasons = []
    if not b["rnn_attention"]["long"] > b["rnn"]["long"]:
        reasons.append("attention is not ahead on long sentences")
    elif not claim["p_value"] < 0.05:
        reasons.append(f"its lead on long sentences is not significant (p={claim['p_value']:.3f})")
    r = claim["ratio_long_short"]
    if not (r["rnn_attention"] is not None and r["rnn"] is not None and r["rnn_attention"] > r["rnn"]):
        reasons.append("it does not fall less with length than the plain model")
    if not claim.get("chrf_agrees", True):
        reasons.append("chrF on long sentences is not higher with attention (a BLEU gap from length alone)")
    return ("**The attention effect does NOT reproduce at this size:** " + "; ".join(reasons)
            + f" ({claim['evidence']}).")


# --- plots --------------------------------------------------------------------------------------------------

def plot_by_length(results: dict, path: Path, title: str) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, name in ((axes[0], "bleu", "BLEU"), (axes[1], "chrf", "chrF")):
        for arch, m in results.items():
            rows = m["by_length"]
            xs = list(range(len(rows)))
            ax.plot(xs, [r[key] if r[key] is not None else float("nan") for r in rows], marker="o",
                    color=COLORS.get(arch), label=LABELS.get(arch, arch))
        rows = next(iter(results.values()))["by_length"]
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([f"{r['bucket']}\n(n={r['sentences']})" for r in rows], fontsize=8)
        ax.set_xlabel("source sentence length (words)")
        ax.set_ylabel(f"{name} (test)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def hangul_font():
    """A font that has Hangul glyphs (installed, or shipped by koreanize-matplotlib), else None."""
    from matplotlib import font_manager

    for f in font_manager.fontManager.ttflist:
        if any(k in f.name for k in ("Nanum", "Noto Sans CJK", "Noto Sans KR", "Noto Serif CJK", "UnDotum",
                                     "Baekmuk", "Malgun", "AppleGothic", "Source Han")):
            return font_manager.FontProperties(fname=f.fname)
    spec = importlib.util.find_spec("koreanize_matplotlib")
    if spec and spec.submodule_search_locations:
        for p in Path(spec.submodule_search_locations[0]).rglob("*.ttf"):
            return font_manager.FontProperties(fname=str(p))
    return None


_INITIAL = "g kk n d tt r m b pp s ss - j jj ch k t p h".split()
_MEDIAL = "a ae ya yae eo e yeo ye o wa wae oe yo u wo we wi yu eu ui i".split()
_FINAL = ["", *"g kk gs n nj nh d l lg lm lb ls lt lp lh m b bs s ss ng j ch k t p h".split()]


def romanize(text: str) -> str:
    """Hangul syllables -> Revised Romanization, letter by letter (no sound-change rules): a label a plot can
    draw when no Hangul font is installed."""
    out = []
    for ch in text:
        code = ord(ch) - 0xAC00
        if 0 <= code < 11172:
            i, m, f = code // 588, (code % 588) // 28, code % 28
            out.append(("" if _INITIAL[i] == "-" else _INITIAL[i]) + _MEDIAL[m] + _FINAL[f])
        else:
            out.append(ch)
    return "".join(out)


def plot_attention(src_tokens, out_tokens, weights, path: Path, title: str) -> Path:
    plt = pyplot()
    font = hangul_font()
    has_hangul = any("\uac00" <= c <= "\ud7a3" for t in src_tokens + out_tokens for c in t)
    label = (lambda t: t) if (font or not has_hangul) else romanize
    fig, ax = plt.subplots(figsize=(max(5, 0.38 * len(src_tokens) + 2), max(4, 0.32 * len(out_tokens) + 1.5)))
    im = ax.imshow(weights, cmap="Greys", aspect="auto", vmin=0)  # scaled to the largest weight: see the bar
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="attention weight")
    ax.set_xticks(range(len(src_tokens)))
    ax.set_xticklabels([label(t) for t in src_tokens], rotation=90, fontproperties=font, fontsize=8)
    ax.set_yticks(range(len(out_tokens)))
    ax.set_yticklabels([label(t) for t in out_tokens], fontproperties=font, fontsize=8)
    ax.set_xlabel("source tokens")
    ax.set_ylabel("output tokens" + ("" if label is not romanize else " (romanized: no Hangul font installed)"))
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def default_heatmap_text(sources: list[str]) -> str:
    return next((s for s in sources if 10 <= n_words(s) <= 20), sources[0])


# --- the comparison ------------------------------------------------------------------------------------------

def results_rows(results: dict) -> list[dict]:
    rows = []
    for arch, m in results.items():
        row = {"model": LABELS.get(arch, arch), "parameters": m["parameters"], "updates": m["steps"],
               "training time (s)": m["train_seconds"],
               ("BLEU (greedy)" if m["num_beams"] == 1 else f"BLEU (beam {m['num_beams']})"): m["bleu"],
               "chrF": m["chrf"]}
        if "greedy_bleu" in m:
            row["BLEU (greedy)"] = m["greedy_bleu"]
        if "test_loss" in m:
            row["test loss (own / other source)"] = f"{m['test_loss']:.2f} / {m['test_loss_other_source']:.2f}"
        for r in m["by_length"]:
            row[f"BLEU {r['bucket']}"] = r["bleu"]
        rows.append(row)
    return rows


def length_rows(results: dict) -> list[dict]:
    first = next(iter(results.values()))["by_length"]
    rows = []
    for i, b in enumerate(first):
        row = {"source words": b["bucket"], "sentences": b["sentences"]}
        for arch, m in results.items():
            row[f"BLEU {arch}"] = m["by_length"][i]["bleu"]
        for arch, m in results.items():
            row[f"chrF {arch}"] = m["by_length"][i]["chrf"]
        rows.append(row)
    return rows


def write_results(root: Path, results: dict, pairs, vocab_size: int, claim: dict, heat: dict | None) -> dict:
    """results.md and bleu_by_length.png in the run folder; returns the comparison's metrics."""
    first = next(iter(results.values()))
    tokenize = first["bleu_tokenize"]
    title = (f"{pairs.name} {pairs.source_lang}->{pairs.target_lang}, test split (n={first['test_sentences']}), "
             f"{first['steps']} updates of {first['batch_size']} pairs each; BLEU tok:{tokenize}")
    plot_by_length(results, root / "bleu_by_length.png", title)
    md = ["# Translation: seq2seq with and without attention, and a Transformer", "",
          f"Data: `{pairs.name}` {pairs.source_lang}->{pairs.target_lang}; every model saw the same "
          f"{first['train_pairs']:,} training pairs, the same BPE vocabulary ({vocab_size:,} tokens) and "
          f"{first['steps']} updates of {first['batch_size']} pairs. Test: {first['test_sentences']:,} held-out pairs.",
          "", "## Results", "", md_table(results_rows(results), digits=2),
          f"BLEU: `{first['bleu_signature']}`  ", f"chrF: `{first['chrf_signature']}`", "",
          "## BLEU and chrF by source sentence length", "", md_table(length_rows(results), digits=2),
          "![BLEU by source length](bleu_by_length.png)", "", claim_sentence(claim), ""]
    if heat:
        md += ["## Attention weights for one test sentence", "", f"Source: {heat['source']}  ",
               f"Output (greedy): {heat['translation']}", "", "![attention](attention.png)", ""]
    atomic_write_text(root / "results.md", "\n".join(md))
    print("\n".join(md[:12]))
    print(claim_sentence(claim))
    return {"archs": list(results), "claim": claim, "results_md": "results.md",
            "plot": "bleu_by_length.png", "heatmap": heat,
            **{f"{a}_bleu": m["bleu"] for a, m in results.items()},
            **{f"{a}_chrf": m["chrf"] for a, m in results.items()}}
