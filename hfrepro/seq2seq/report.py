"""The comparison of the models: results table, BLEU and chrF by source length with paired bootstrap intervals, the
sweep of the fixed vector's size, the loss curves, the attention heat map of one sentence, and the numbers behind
the claim "attention holds translation up on long sentences where one fixed vector is too small to carry them".
Reads and writes files only: no model is loaded here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hfrepro.claims import LEVEL, N_BOOT
from hfrepro.fsutil import atomic_write_text
from hfrepro.report import figure, fmt, md_table, pyplot, save_figure
from hfrepro.seq2seq import scoring
from hfrepro.seq2seq.data import BUCKETS, bucket_label, bucket_of, n_words

LABELS = {"rnn": "GRU enc-dec (no attention)", "rnn_attention": "GRU + attention", "transformer": "Transformer"}
COLORS = {"rnn": "tab:red", "rnn_attention": "tab:blue", "transformer": "tab:green"}
MIN_LONG = 50  # fewer long test sentences than this: the long-sentence gap is not measured
# The caption under each figure in the Markdown (hfrepro.report.figure), saying what to look at.
CAPTIONS = {
    "curves": "Validation loss of every model while it trains (dashed: the sweep's models): a curve still "
              "falling at its end would go lower with more updates.",
    "bleu_by_length": "BLEU (left) and chrF (right) by source length: look at the right end, the long sentences, "
                      "where one fixed vector has the most to carry and attention should help most.",
    "sweep": "Scores on long sentences as the fixed vector shrinks (right to left): the plain model has only that "
             "vector, so its line should fall faster than the attention model's.",
    "attention": "Which source tokens each output token read: a diagonal means the model aligns the words in "
                 "order; a smear means it reads everything alike.",
}


def attention_order(read: str) -> str:
    """How the attention model reads the encoder, in words (the stage's report and the model card)."""
    if read == "before":
        return "read before each decoder step and fed into it (Bahdanau et al.'s order)"
    return "read after each decoder step (Luong et al.'s order)"


def read_outputs(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(sources, references, hypotheses) of a model's test translations."""
    return tuple(scoring.read_lines(folder / f"{name}.txt") for name in ("src", "ref", "hyp"))


def label(name: str, m: dict) -> str:
    """`GRU + attention, c=8` for a model of the sweep, the arch's label for a main model."""
    text = LABELS.get(m["arch"], m["arch"])
    return text + (f", c={m['context_size']}" if name != m["arch"] else "")


# --- attention minus plain, with paired bootstrap intervals ----------------------------------------------------

def paired_stats(root: Path, base: str, system: str, tokenize: str) -> tuple[list[str], dict, dict]:
    """(sources, base's sentence statistics, system's): two models' translations of the same test sentences."""
    src, ref, hyp_a = read_outputs(root / base)
    src_b, _, hyp_b = read_outputs(root / system)
    if src != src_b:
        raise ValueError(f"{base} and {system} translated different test sentences")
    return src, scoring.sentence_stats(hyp_a, ref, tokenize), scoring.sentence_stats(hyp_b, ref, tokenize)


def gaps_on(src: list[str], base: dict, system: dict, idx: list[int], tokenize: str, rng,
            n_boot: int = N_BOOT) -> dict:
    """system − base BLEU and chrF on the sentences `idx`: {"n", "bleu": (gap, samples), "chrf": (gap, samples)},
    the samples from one set of resamples of those sentences shared by both metrics (paired bootstrap)."""
    counts = scoring.resample_counts(len(idx), n_boot, rng)
    out = {"n": len(idx)}
    for metric in ("bleu", "chrf"):
        out[metric] = scoring.paired_gap({k: v[idx] for k, v in base.items()},
                                         {k: v[idx] for k, v in system.items()}, metric, tokenize, counts)
    return out


def summarize(gaps: dict, level: float = LEVEL) -> dict:
    """{"n", "bleu": [gap, lo, hi], "chrf": [gap, lo, hi]} from gaps_on's result."""
    return {"n": gaps["n"], **{m: [gaps[m][0], *scoring.interval(gaps[m][1], level)] for m in ("bleu", "chrf")}}


def long_gaps(root: Path, base: str, system: str, tokenize: str, long_from: int, rng, n_boot: int = N_BOOT):
    """system − base on the test sentences of `long_from`+ source words (None when fewer than MIN_LONG)."""
    src, a, b = paired_stats(root, base, system, tokenize)
    idx = [i for i, s in enumerate(src) if n_words(s) >= long_from]
    return gaps_on(src, a, b, idx, tokenize, rng, n_boot) if len(idx) >= MIN_LONG else None


def bucket_gaps(root: Path, base: str, system: str, tokenize: str, seed: int = 0) -> list[dict]:
    """system − base BLEU and chrF in every source-length bucket, each with its 95% paired bootstrap interval."""
    import numpy as np

    rng = np.random.default_rng(seed)
    src, a, b = paired_stats(root, base, system, tokenize)
    rows = []
    for bucket in BUCKETS:
        idx = [i for i, s in enumerate(src) if bucket_of(n_words(s)) == bucket_label(bucket)]
        rows.append({"bucket": bucket_label(bucket), **(summarize(gaps_on(src, a, b, idx, tokenize, rng))
                                                       if len(idx) >= 2 else {"n": len(idx)})})
    return rows


def sweep_rows(root: Path, results: dict, tokenize: str, long_from: int) -> list[dict]:
    """Per fixed-vector size: each GRU model's BLEU/chrF and output/reference length on long and shorter test
    sentences (the sweep: the main models' size and each size of sweep_context_sizes)."""
    rows = []
    for name, m in results.items():
        if m["arch"] == "transformer":
            continue
        src, ref, hyp = read_outputs(root / name)
        stats = scoring.sentence_stats(hyp, ref, tokenize)
        row = {"arch": m["arch"], "name": name, "context_size": m["context_size"]}
        for part, keep in (("long", lambda w: w >= long_from), ("short", lambda w: w < long_from)):
            idx = [i for i, s in enumerate(src) if keep(n_words(s))]
            sc = scoring.subset_score(stats, idx, tokenize) if idx else {}
            row.update({f"{part}_bleu": sc.get("bleu"), f"{part}_chrf": sc.get("chrf"), f"n_{part}": len(idx),
                        f"{part}_length_ratio": sc["sys_len"] / max(1, sc["ref_len"]) if sc else None})
        rows.append(row)
    return sorted(rows, key=lambda r: (-r["context_size"], r["arch"]))


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


def plot_sweep(sweeps: dict, path: Path, title: str) -> Path:
    """Long-sentence chrF and BLEU against the fixed vector's size, one panel per metric, a line per model and
    language pair ({language pair: sweep_rows})."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    styles = ("-", "--", ":")
    for ax, key, name in ((axes[0], "long_chrf", "chrF"), (axes[1], "long_bleu", "BLEU")):
        for (lang, rows), style in zip(sweeps.items(), styles):
            for arch in ("rnn", "rnn_attention"):
                pts = sorted((r["context_size"], r[key]) for r in rows if r["arch"] == arch and r[key] is not None)
                if pts:
                    ax.plot(*zip(*pts), marker="o", linestyle=style, color=COLORS[arch],
                            label=f"{LABELS[arch]}, {lang}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("size of the fixed vector c (numbers)")
        ax.set_ylabel(f"{name} on long test sentences")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_curves(results: dict, path: Path, title: str) -> Path:
    """Validation loss against updates for every model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, m in results.items():
        if m.get("val_curve"):
            steps, losses = zip(*m["val_curve"])
            ax.plot(steps, losses, color=COLORS.get(m["arch"]), label=label(name, m),
                    linestyle="-" if name == m["arch"] else "--", marker=".")
    ax.set_xlabel("update")
    ax.set_ylabel("validation loss (nats per target token)")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
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

def last_quarter_change(curve: list) -> float | None:
    """Validation loss at the end minus at 3/4 of training: near 0 when the curve has flattened."""
    if not curve or len(curve) < 2:
        return None
    end = curve[-1][0]
    at = min(curve, key=lambda p: abs(p[0] - 0.75 * end))
    return curve[-1][1] - at[1]


def results_rows(results: dict) -> list[dict]:
    rows = []
    for name, m in results.items():
        row = {"model": label(name, m), "fixed vector c": m.get("context_size"), "parameters": m["parameters"],
               "updates": m["steps"], "validation loss": m.get("val_loss"),
               "its change over the last quarter": last_quarter_change(m.get("val_curve")),
               ("BLEU (greedy)" if m["num_beams"] == 1 else f"BLEU (beam {m['num_beams']})"): m["bleu"],
               "chrF": m["chrf"]}
        if "greedy_bleu" in m:
            row["BLEU (greedy)"] = m["greedy_bleu"]
        if "test_loss" in m:
            row["test loss (own / other source)"] = f"{m['test_loss']:.2f} / {m['test_loss_other_source']:.2f}"
        rows.append(row)
    return rows


def gap_text(g: list | None) -> str:
    return "n/a" if not g else f"{g[0]:+.2f} [{g[1]:+.2f}, {g[2]:+.2f}]"


def length_rows(results: dict, gaps: list[dict] | None) -> list[dict]:
    """BLEU and chrF per source-length bucket for the main models, with attention − plain and its interval."""
    first = next(iter(results.values()))["by_length"]
    rows = []
    for i, b in enumerate(first):
        row = {"source words": b["bucket"], "sentences": b["sentences"]}
        for metric, name in (("bleu", "BLEU"), ("chrf", "chrF")):
            for arch, m in results.items():
                row[f"{name} {arch}"] = m["by_length"][i][metric]
            if gaps:
                row[f"{name} attention − plain [95%]"] = gap_text(gaps[i].get(metric))
        rows.append(row)
    return rows


def sweep_table(rows: list[dict]) -> list[dict]:
    """One line per fixed-vector size: both GRU models on long and shorter sentences."""
    out = []
    for size in sorted({r["context_size"] for r in rows}, reverse=True):
        by = {r["arch"]: r for r in rows if r["context_size"] == size}
        p, a = by.get("rnn", {}), by.get("rnn_attention", {})
        out.append({"fixed vector c": size, "long chrF plain": p.get("long_chrf"),
                    "long chrF attention": a.get("long_chrf"), "long BLEU plain": p.get("long_bleu"),
                    "long BLEU attention": a.get("long_bleu"),
                    "long output/reference length, plain / attention":
                        f"{fmt(p.get('long_length_ratio'), 2)} / {fmt(a.get('long_length_ratio'), 2)}",
                    "shorter chrF plain": p.get("short_chrf"), "shorter chrF attention": a.get("short_chrf")})
    return out


def check_sentence(check: dict | None, long_from: int) -> str:
    if not check:
        return "Attention − plain on long sentences at the smallest fixed vector: not measured (no sweep, or too few " \
               "long test sentences)."
    return (f"**Where attention's advantage lives**: with a fixed vector of {check['size']} numbers, attention − "
            f"plain on the {check['n']} test sentences of {long_from}+ source words is chrF {gap_text(check['chrf'])} "
            f"and BLEU "
            f"{gap_text(check['bleu'])} (95% paired bootstrap intervals over those sentences); with "
            f"{check['full_size']} numbers it is chrF {gap_text(check.get('full_chrf'))}, "
            f"BLEU {gap_text(check.get('full_bleu'))}.")


def write_results(root: Path, results: dict, pairs, vocab_size: int, gaps: list[dict] | None, sweep: list[dict],
                  check: dict | None, heat: dict | None, long_from: int) -> dict:
    """results.md, bleu_by_length.png, sweep.png and curves.png in the run folder; returns the comparison's metrics."""
    main = {n: m for n, m in results.items() if n == m["arch"]}
    first = next(iter(results.values()))
    tokenize, what = first["bleu_tokenize"], f"{pairs.name} {pairs.source_lang}->{pairs.target_lang}"
    plot_by_length(main, root / "bleu_by_length.png",
                   f"{what}, test split (n={first['test_sentences']}), {first['steps']} updates of "
                   f"{first['batch_size']} pairs each; BLEU tok:{tokenize}")
    plot_curves(results, root / "curves.png", f"{what}: validation loss while training (dashed: the sweep's models)")
    if len({r["context_size"] for r in sweep}) > 1:
        plot_sweep({f"{pairs.source_lang}-{pairs.target_lang}": sweep}, root / "sweep.png",
                   f"{what}: long sentences ({long_from}+ words) as the fixed vector shrinks")
    md = ["# Translation: seq2seq with and without attention, and a Transformer", "",
          f"Data: `{pairs.name}` {pairs.source_lang}->{pairs.target_lang}; every model saw the same "
          f"{first['train_pairs']:,} training pairs, the same BPE vocabulary ({vocab_size:,} tokens) and "
          f"{first['steps']} updates of {first['batch_size']} pairs. Test: {first['test_sentences']:,} held-out pairs.",
          "", "## Results", "", md_table(results_rows(results), digits=2),
          f"BLEU: `{first['bleu_signature']}`  ", f"chrF: `{first['chrf_signature']}`", "",
          *figure("curves.png", "validation loss", CAPTIONS["curves"]),
          "## BLEU and chrF by source sentence length", "", md_table(length_rows(main, gaps), digits=2),
          *figure("bleu_by_length.png", "BLEU by source length", CAPTIONS["bleu_by_length"])]
    if len({r["context_size"] for r in sweep}) > 1:
        md += ["## The fixed vector's size", "", md_table(sweep_table(sweep), digits=2),
               *figure("sweep.png", "sweep", CAPTIONS["sweep"])]
    md += [check_sentence(check, long_from), ""]
    if heat:
        md += ["## Attention weights for one test sentence", "", f"Source: {heat['source']}  ",
               f"Output (greedy): {heat['translation']}", "",
               *figure("attention.png", "attention", CAPTIONS["attention"])]
    atomic_write_text(root / "results.md", "\n".join(md))
    print("\n".join(md[:12]))
    print(check_sentence(check, long_from))
    return {"models": list(results), "archs": list(main), "language_pair": f"{pairs.source_lang}-{pairs.target_lang}",
            "long_from_words": long_from, "bucket_gaps": gaps, "sweep": sweep, "long_check": check,
            "results_md": "results.md", "plot": "bleu_by_length.png", "heatmap": heat,
            **{f"{n}_bleu": m["bleu"] for n, m in results.items()},
            **{f"{n}_chrf": m["chrf"] for n, m in results.items()}}
