"""Stage 1 of `hfrepro reproduce`: word2vec CBOW vs skip-gram on the embedded English text, and a Korean model.

Runs (budgets: recipes/configs/word2vec/<budget>.yaml and recipes/configs/word2vec/korean/<budget>.yaml; the two
modes train at the same time, one core each, `workers=1`: deterministic):

    word2vec   both modes on the English corpus; tiny: kjv + shakespeare + lo-help-en (2.1M tokens), 1 epoch,
               50 dimensions; default: every English source (7.3M tokens), 1 epoch; full: 5 epochs
    korean     skip-gram on the Korean corpus (365k tokens); tiny 1 epoch, default 3, full 5

Claims, decided from the English run:
    w2v-skipgram-semantic  skip-gram's accuracy on the covered semantic questions > CBOW's (not measurable
                           when fewer than 50 semantic questions are covered)
    w2v-cbow-faster        CBOW's training words/s > skip-gram's, same corpus, same settings
    w2v-king-queen         "queen" is among the 5 nearest words to king - man + woman (skip-gram model,
                           inputs excluded)
The Korean run shows Hangul end to end and asks 한국 - 서울 + 파리 as a user would.
"""

from __future__ import annotations

import shutil

import yaml

from hfrepro.claims import Claim, StageContext, StageResult
from hfrepro.embeddings import vectors
from hfrepro.embeddings.results import results_markdown
from hfrepro.embeddings.text import load_corpus
from hfrepro.errors import UserError
from hfrepro.fsutil import read_json
from hfrepro.report import md_table
from hfrepro.reproduce.plan import RecipeRun

CLAIMS = [
    Claim("w2v-skipgram-semantic", "Skip-gram beats CBOW on semantic analogies (Mikolov et al. 2013: 55% vs 24%)"),
    Claim("w2v-cbow-faster", "CBOW trains faster than skip-gram"),
    Claim("w2v-king-queen", "king − man + woman lands near queen"),
]
RUNS = [RecipeRun("word2vec"), RecipeRun("word2vec", name="korean", config="word2vec/korean")]

MIN_SEMANTIC = 50
KING_QUEEN_TOPN = 5
KOREAN_ANALOGY = ("한국", "서울", "파리")  # 한국 - 서울 + 파리 ≈ 프랑스 ?
KOREAN_EXPECT = "프랑스"
KOREAN_PROBES = ("대통령", "국회", "문서", "데이터")


def claims_from(metrics: dict) -> dict:
    """Each claim's (evidence, held) from the English run's metrics; held is None when it could not be measured."""
    out: dict = {}
    c, s = metrics.get("cbow", {}), metrics.get("skipgram", {})
    ca, sa = c.get("analogies"), s.get("analogies")
    if ca and sa:
        cs, ss, n = ca["semantic"]["accuracy"], sa["semantic"]["accuracy"], ca["semantic"]["covered"]
        if n >= MIN_SEMANTIC and cs is not None and ss is not None:
            out["w2v-skipgram-semantic"] = (
                f"semantic analogies, {n:,} of {ca['semantic']['questions']:,} questions covered: skip-gram "
                f"{ss:.1%} vs CBOW {cs:.1%} (syntactic: skip-gram {sa['syntactic']['accuracy'] or 0:.1%} vs CBOW "
                f"{ca['syntactic']['accuracy'] or 0:.1%}); paper: 55% vs 24%", ss > cs)
        else:
            out["w2v-skipgram-semantic"] = (f"only {n} semantic questions covered by the vocabulary "
                                            f"(< {MIN_SEMANTIC}): not measurable at this size", None)
    if c.get("words_per_sec") and s.get("words_per_sec"):
        cw, sw = c["words_per_sec"], s["words_per_sec"]
        out["w2v-cbow-faster"] = (f"CBOW {cw:,.0f} vs skip-gram {sw:,.0f} training words/s ({cw / sw:.1f}x), "
                                  f"{metrics['corpus']['tokens']:,}-token corpus, same settings", cw > sw)
    kq = s.get("king_queen")
    if kq:
        ck = (c.get("king_queen") or {}).get("rank")
        if kq.get("rank") is None:
            out["w2v-king-queen"] = (f"not measurable: {', '.join(kq.get('missing', []))} not in the vocabulary",
                                     None)
        else:
            top = ", ".join(w for w, _ in kq["top"][:3])
            out["w2v-king-queen"] = (
                f"skip-gram: queen is nearest #{kq['rank']} to king − man + woman (cosine {kq['cosine']:.2f}; "
                f"top 3: {top}); CBOW: #{ck}; held if in the top {KING_QUEEN_TOPN}", kq["rank"] <= KING_QUEEN_TOPN)
    return out


def korean_demo(kv, where: str) -> dict:
    """The Korean analogy as a user would ask it, and the neighbours of a few frequent words."""
    out: dict = {"query": " − ".join(KOREAN_ANALOGY[:2]) + " + " + KOREAN_ANALOGY[2], "vocab_size": len(kv)}
    try:
        out["nearest"] = vectors.analogy(kv, *KOREAN_ANALOGY, topn=5, where=where)
        out["rank_of_expected"] = vectors.rank_of(kv, *KOREAN_ANALOGY, KOREAN_EXPECT)[0]
    except UserError as e:
        out["error"] = e.what
    out["neighbours"] = {w: [x for x, _ in kv.most_similar(w, topn=6)] for w in KOREAN_PROBES
                         if w in kv.key_to_index}
    return out


def corpus_counts(config: dict, words) -> dict:
    """How often `words` occur in a run's training text (after tokenisation, before min_count)."""
    corpus = load_corpus(config["corpus"], language=config["language"], text_column=config["text_column"],
                         max_tokens=config["max_tokens"], seed=config["seed"])
    counts = corpus.counts()
    return {w: counts.get(w, 0) for w in words}


def _run(ctx: StageContext, name: str) -> tuple[dict, dict]:
    folder = ctx.run_dir(name)
    for ck in folder.glob("*/checkpoint-*"):  # resume state is of no use once the stage is done (~80 MB)
        shutil.rmtree(ck, ignore_errors=True)
    return read_json(folder / "metrics.json"), yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))


def section(ctx: StageContext) -> StageResult:
    en, en_cfg = _run(ctx, "word2vec")
    ko, ko_cfg = _run(ctx, "korean")
    ko_dir = ctx.run_dir("korean") / "skipgram"
    demo = korean_demo(vectors.load(ko_dir), str(ko_dir))
    demo["corpus_counts"] = corpus_counts(ko_cfg, (*KOREAN_ANALOGY, KOREAN_EXPECT))
    md = [f"Budget `{ctx.budget}`: {en['corpus']['tokens']:,} English tokens, {en_cfg['epochs']} epoch(s), "
          f"{en_cfg['vector_size']} dimensions, window {en_cfg['window']}, negative sampling {en_cfg['negative']}, "
          f"`workers=1` per mode (deterministic). Full recipe: `hfrepro word2vec --budget full` (5 epochs); "
          f"tools: `hfrepro embeddings --help`.", "",
          results_markdown(en, rel=lambda p: ctx.rel(ctx.run_dir("word2vec") / p)), ""]
    md += korean_markdown(ko, ko_cfg, demo)
    metrics = {"english": {k: en[k] for k in ("corpus", "modes", "deterministic")},
               **{m: {k: v for k, v in en[m].items() if k != "analogies"} for m in en["modes"]},
               "analogies": {m: {c: en[m]["analogies"][c] for c in ("semantic", "syntactic", "total")}
                             for m in en["modes"] if en[m].get("analogies")},
               "classification": en.get("classification"),
               "korean": {"corpus": {**ko["corpus"], "word_counts": demo["corpus_counts"]}, "demo": demo}}
    return StageResult(markdown="\n".join(md), claims=claims_from(en), metrics=metrics)


def korean_markdown(ko: dict, ko_cfg: dict, demo: dict) -> list[str]:
    md = [f"### Korean ({ko['corpus']['tokens']:,} tokens: kolaw, kobill, debian-faq-ko, lo-help-ko; "
          f"skip-gram, {ko_cfg['epochs']} epoch(s), {demo['vocab_size']:,} words)", ""]
    counts = ", ".join(f"{w} {n}×" for w, n in demo["corpus_counts"].items())
    if "error" in demo:
        never = [w for w, n in demo["corpus_counts"].items() if n == 0]
        rare = [w for w, n in demo["corpus_counts"].items() if 0 < n < ko_cfg["min_count"]]
        why = []
        if never:
            why.append(f"{', '.join(never)} never occur{'s' if len(never) == 1 else ''}")
        if rare:
            why.append(f"{', '.join(rare)} occur{'s' if len(rare) == 1 else ''} fewer than min_count="
                       f"{ko_cfg['min_count']} times")
        md += [f"`hfrepro embeddings analogy 한국 서울 파리` answers: *{demo['error']}*. In the training text "
               f"(after particle stripping): {counts}, so {' and '.join(why)}. The embedded Korean text is law, "
               "bills, LibreOffice help and a Debian FAQ: the classic 한국 − 서울 + 파리 ≈ 프랑스 cannot even be "
               "asked at this scale; it needs general text such as news or Wikipedia "
               "(`hfrepro word2vec --corpus your_korean_text.txt`).", ""]
    else:
        near = ", ".join(f"{w} ({s:.2f})" for w, s in demo["nearest"])
        md += [f"한국 − 서울 + 파리 ≈ {near}; 프랑스 is #{demo['rank_of_expected']}. Occurrences: {counts}.", ""]
    if demo["neighbours"]:
        md += ["Nearest words in the Korean model (Hangul works end to end):", "",
               md_table([{"word": w, "nearest": ", ".join(n)} for w, n in demo["neighbours"].items()]), ""]
    return md
