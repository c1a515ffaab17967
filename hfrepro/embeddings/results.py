"""A word2vec run's results as people read them: the CBOW vs skip-gram table, whether Mikolov et al. (2013)'s
ordering reproduces (a sentence written from the run's own numbers), per-section analogy accuracy, king - man +
woman, the classification table. The recipe writes them to results.md; the main job's section embeds them.
"""

from __future__ import annotations

from hfrepro.embeddings.classify import table as classify_table
from hfrepro.embeddings.evaluate import section_table
from hfrepro.report import figure, md_table

PCA_CAPTION = ("Each arrow is one pair's offset (man → woman, king → queen, ...): parallel arrows of similar length "
               "mean the vectors encode the relation as one direction; the star is king − man + woman. A 2-D PCA "
               "projection of the vectors: a picture, not the measurement.")


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def comparison_rows(metrics: dict) -> list[dict]:
    rows = []
    for m in metrics["modes"]:
        mm = metrics[m]
        an = mm.get("analogies")
        rows.append({
            "mode": "skip-gram" if m == "skipgram" else "CBOW",
            "words/s": round(mm["words_per_sec"]) if mm.get("words_per_sec") else None,
            "train s": mm.get("train_seconds"),
            "semantic acc.": _pct(an["semantic"]["accuracy"]) if an else "n/a",
            "syntactic acc.": _pct(an["syntactic"]["accuracy"]) if an else "n/a",
            "total acc.": _pct(an["total"]["accuracy"]) if an else "n/a",
            "questions covered": f"{an['total']['covered']:,} / {an['total']['questions']:,}" if an else "n/a",
            "WordSim353 ρ": mm.get("wordsim353", {}).get("spearman"),
            "SimLex-999 ρ": mm.get("simlex999", {}).get("spearman"),
            "king−man+woman: rank of queen": (mm.get("king_queen") or {}).get("rank"),
        })
    return rows


def mikolov_sentence(metrics: dict) -> str:
    """Whether Mikolov et al. (2013)'s ordering reproduces here, written from this run's numbers."""
    if not all(m in metrics and metrics[m].get("analogies") for m in ("cbow", "skipgram")):
        return ""
    c, s = metrics["cbow"]["analogies"], metrics["skipgram"]["analogies"]
    cs, ss, cy, sy = (c["semantic"]["accuracy"], s["semantic"]["accuracy"], c["syntactic"]["accuracy"],
                      s["syntactic"]["accuracy"])
    if None in (cs, ss, cy, sy):
        return "Too few analogy questions are covered by the vocabulary to compare the modes."
    sem_ok, syn_ok = ss > cs, cy > sy
    fast = metrics["cbow"].get("words_per_sec") or 0
    slow = metrics["skipgram"].get("words_per_sec") or 0
    tok = metrics["corpus"]["tokens"]
    empty = [x["section"] for x in c["sections"] if x["category"] == "semantic" and x["coverage"] < 0.1]
    parts = [
        f"Mikolov et al. (2013) found skip-gram far ahead on semantic analogies (55% vs 24%) and CBOW slightly "
        f"ahead on syntactic ones (64% vs 59%). Here skip-gram scores {_pct(ss)} vs CBOW {_pct(cs)} on the "
        f"{c['semantic']['covered']:,} covered semantic questions (skip-gram "
        + ("ahead" if sem_ok else "not ahead")
        + f"); on the {c['syntactic']['covered']:,} covered syntactic questions CBOW scores {_pct(cy)} vs skip-gram "
        f"{_pct(sy)} (CBOW " + ("ahead" if syn_ok else "not ahead") + "). Whether a difference is more than "
        "the luck of which questions were asked is decided with a paired bootstrap over the questions "
        "(`hfrepro reproduce`'s claims table).",
        f"CBOW trained {fast / slow:.1f}x faster ({fast:,.0f} vs {slow:,.0f} words/s)." if fast and slow else "",
        f"Absolute accuracies are far below the paper's, which trained on 783M words of news; this run had "
        f"{tok / 1e6:.1f}M tokens ({metrics['corpus']['spec']}), and only {_pct(c['total']['coverage'])} of the "
        f"{c['total']['questions']:,} questions have all four words in its vocabulary"
        + (f" (under 10% of {', '.join(empty)} is covered: those names hardly occur in the text)" if empty else "")
        + ".",
    ]
    if not syn_ok:
        parts.append("A likely reason: the word2vec authors note that skip-gram works well with small training "
                     "data and represents rare words well (it makes one training pair per neighbour, so a rare "
                     "word gets 2 x window updates where CBOW gives it one averaged share), and this corpus is "
                     "small.")
    if not sem_ok:
        parts.append("With so few covered semantic questions the semantic comparison rests on a handful of "
                     "answers and can go either way.")
    return " ".join(p for p in parts if p)


def results_markdown(metrics: dict, rel=lambda p: p) -> str:
    """results.md of a word2vec run (the stage's section embeds it): corpus, the CBOW vs skip-gram table, the
    sentence on Mikolov et al., per-section accuracy, king - man + woman, the plot, the classification.
    `rel` maps a file of the run folder to the link written (the section's paths are relative to REPORT.md)."""
    ci = metrics["corpus"]
    lines = [f"### Corpus: {ci['spec']} ({ci['language']}), {ci['tokens']:,} tokens", "",
             md_table([{"source": s["source"], "sentences": s["rows"], "tokens": s["tokens"]}
                       for s in ci["sources"]]), ""]
    modes = metrics["modes"]
    lines += ["### CBOW vs skip-gram", "", md_table(comparison_rows(metrics)), ""]
    if all(metrics[m].get("analogies") for m in modes):
        lines += ["Reference, Mikolov et al. (2013, Table 3; 640 dimensions, 783M words): CBOW 24% semantic / "
                  "64% syntactic, skip-gram 55% / 59%.", ""]
        sent = mikolov_sentence(metrics)
        if sent:
            lines += [sent, ""]
        det = ("deterministic (workers=1: the same command gives the same numbers)" if metrics.get("deterministic")
               else "not deterministic (workers>1)")
        par = any(metrics[m].get("trained_in_parallel") for m in modes)
        how = "the modes trained at the same time, one core each" if par else "one mode after the other"
        lines += [f"Words/s are corpus words per second of training ({how}; {det}). Accuracy is over the "
                  "covered questions (gensim's protocol).", ""]
        rows = []
        first = metrics[modes[0]]["analogies"]
        for i, sec in enumerate(section_table({"analogies": first})):
            row = {k: sec[k] for k in ("section", "category", "questions", "covered")}
            for m in modes:
                row[f"{m} acc."] = section_table({"analogies": metrics[m]["analogies"]})[i]["accuracy"]
            rows.append(row)
        lines += ["### questions-words, per section", "", md_table(rows, digits=3), ""]
        kq = []
        for m in modes:
            k = metrics[m].get("king_queen") or {}
            kq.append({"mode": m, "rank of queen": k.get("rank"), "cosine": k.get("cosine"),
                       "nearest to king − man + woman": ", ".join(f"{w} ({s:.2f})" for w, s in k.get("top", []))})
        lines += ["### king − man + woman", "", md_table(kq), ""]
    elif metrics[modes[0]].get("benchmarks"):
        lines += [f"Benchmarks {metrics[modes[0]]['benchmarks']}.", ""]
    if metrics.get("plot", {}).get("path"):
        lines += figure(rel(metrics["plot"]["path"]), "analogy offsets in 2-D PCA", PCA_CAPTION)
    cl = metrics.get("classification")
    if cl:
        lines += [f"### Classification: {cl['task']} ({cl['label_column']}, {len(cl['labels'])} classes; "
                  f"{cl['train']:,} train / {cl['test']:,} test)", "", md_table(classify_table(cl)), ""]
    return "\n".join(lines)
