"""Stage 1 of `hfrepro reproduce`: word2vec CBOW vs skip-gram on the embedded English text, a Korean model.

Budgets (the two modes train at the same time, one core each, `workers=1`: deterministic). The critical path
is one skip-gram epoch on one core (~264k words per CPU-second, bench/word2vec.py):

    tiny     kjv + shakespeare + lo-help-en training pages (2.1M tokens), 1 epoch, 50 dimensions;
             classification on 5,000 training paragraphs; Korean skip-gram 1 epoch   (CI: ~25 s quiet, <= 40 s)
    default  every English source (7.3M tokens), 1 epoch, 100 dimensions; full classification; Korean
             skip-gram 3 epochs                               (~60 s on a quiet 2-core machine, target <= 90 s)
    full     the recipe's defaults: 7.3M tokens, 5 epochs; Korean 5 epochs     (~3-4 min, any machine: gensim
             uses CPU threads only)

Claims measured here (see hfrepro/reproduce.py):
    w2v-skipgram-semantic  skip-gram's accuracy on the covered semantic questions > CBOW's (not measurable
                           when fewer than 50 semantic questions are covered)
    w2v-cbow-faster        CBOW's training words/s > skip-gram's, same corpus, same settings
    w2v-king-queen         "queen" is among the 5 nearest words to king - man + woman (skip-gram model,
                           inputs excluded)
"""

from __future__ import annotations

from dataclasses import replace

from hfrepro.embeddings.train import Word2VecArguments

MIN_SEMANTIC = 50
KING_QUEEN_TOPN = 5
KOREAN_ANALOGY = ("한국", "서울", "파리")  # 한국 - 서울 + 파리 ≈ 프랑스 ?
KOREAN_EXPECT = "프랑스"
KOREAN_PROBES = ("대통령", "국회", "문서", "데이터")

BASE = Word2VecArguments(save_text_format=False, progress=True, overwrite=True)
BUDGETS = {
    "tiny": dict(english=replace(BASE, corpus="kjv,shakespeare,lo-help-en", epochs=1, vector_size=50,
                                 classify_max_train=5000),
                 korean=replace(BASE, corpus="korean", modes="skipgram", epochs=1, vector_size=50, classify="")),
    "default": dict(english=replace(BASE, epochs=1),
                    korean=replace(BASE, corpus="korean", modes="skipgram", epochs=3, classify="")),
    "full": dict(english=replace(BASE, save_text_format=True),
                 korean=replace(BASE, corpus="korean", modes="skipgram", epochs=5, classify="",
                                save_text_format=True)),
}


def claims_from(metrics: dict) -> dict:
    """Each claim's (evidence, held) from a run's metrics; held is None when it could not be measured."""
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
    from hfrepro.embeddings import vectors
    from hfrepro.errors import UserError

    out: dict = {"query": " − ".join(KOREAN_ANALOGY[:2]) + " + " + KOREAN_ANALOGY[2], "vocab_size": len(kv)}
    try:
        res = vectors.analogy(kv, *KOREAN_ANALOGY, topn=5, where=where)
        out["nearest"] = res
        out["rank_of_expected"] = vectors.rank_of(kv, *KOREAN_ANALOGY, KOREAN_EXPECT)[0]
    except UserError as e:
        out["error"] = e.what
    out["neighbours"] = {w: [x for x, _ in kv.most_similar(w, topn=6)] for w in KOREAN_PROBES
                         if w in kv.key_to_index}
    return out


def reproduce(ctx):
    from hfrepro.embeddings import train as T
    from hfrepro.embeddings import vectors
    from hfrepro.config import resolved
    from hfrepro.report import md_table
    from hfrepro.claims import StageResult

    import shutil

    b = BUDGETS[ctx.budget]
    # A stage run measures afresh (its words/s are evidence); the recipe, not the stage, resumes.
    for sub in ("english", "korean"):
        shutil.rmtree(ctx.dir / sub, ignore_errors=True)
    en_args = replace(b["english"], seed=ctx.seed, threads=ctx.threads, output_dir=str(ctx.dir / "english"))
    en = T.run(en_args, config=resolved(en_args), log_prefix="[embeddings] ")
    ko_args = replace(b["korean"], seed=ctx.seed, threads=ctx.threads, output_dir=str(ctx.dir / "korean"))
    ko = T.run(ko_args, config=resolved(ko_args), log_prefix="[embeddings] ",
               count_words=(*KOREAN_ANALOGY, KOREAN_EXPECT))
    ko_dir = ctx.dir / "korean" / "skipgram"
    demo = korean_demo(vectors.load(ko_dir), str(ko_dir))
    demo["corpus_counts"] = ko["corpus"]["word_counts"]
    for sub in ("english", "korean"):  # resume state is of no use once the stage is done (~80 MB)
        shutil.rmtree(ctx.dir / sub / "checkpoints", ignore_errors=True)

    claims = claims_from(en)
    md = [f"Budget `{ctx.budget}`: {en['corpus']['tokens']:,} English tokens, {en_args.epochs} epoch(s), "
          f"{en_args.vector_size} dimensions, window {en_args.window}, negative sampling {en_args.negative}, "
          f"`workers=1` per mode (deterministic). Full recipe: `hfrepro word2vec` (5 epochs); "
          f"tools: `hfrepro embeddings --help`.", "",
          T.results_markdown(en, rel=lambda p: ctx.rel(ctx.dir / "english" / p)), ""]
    md += [f"### Korean ({ko['corpus']['tokens']:,} tokens: kolaw, kobill, debian-faq-ko, lo-help-ko; "
           f"skip-gram, {ko_args.epochs} epoch(s), {demo['vocab_size']:,} words)", ""]
    counts = ", ".join(f"{w} {n}×" for w, n in demo["corpus_counts"].items())
    if "error" in demo:
        never = [w for w, n in demo["corpus_counts"].items() if n == 0]
        rare = [w for w, n in demo["corpus_counts"].items() if 0 < n < ko_args.min_count]
        why = []
        if never:
            why.append(f"{', '.join(never)} never occur{'s' if len(never) == 1 else ''}")
        if rare:
            why.append(f"{', '.join(rare)} occur{'s' if len(rare) == 1 else ''} fewer than min_count="
                       f"{ko_args.min_count} times")
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
    metrics = {"english": {k: en[k] for k in ("corpus", "modes", "deterministic")},
               **{m: {k: v for k, v in en[m].items() if k != "analogies"} for m in en["modes"]},
               "analogies": {m: {c: en[m]["analogies"][c] for c in ("semantic", "syntactic", "total")}
                             for m in en["modes"] if en[m].get("analogies")},
               "classification": en.get("classification"), "korean": {"corpus": ko["corpus"], "demo": demo}}
    return StageResult(markdown="\n".join(md), claims=claims, metrics=metrics)
