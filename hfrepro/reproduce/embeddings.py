"""Stage 1 of `hfrepro reproduce`: word2vec CBOW vs skip-gram on the embedded English text, and a Korean model.

Runs (budgets: recipes/configs/word2vec/<budget>.yaml and recipes/configs/word2vec/korean/<budget>.yaml; the two
modes train at the same time, one core each, `workers=1`: deterministic):

    word2vec   both modes on the English corpus (every embedded English source, 7.3M tokens at the default
               budget), evaluated as gensim's tutorial does (the 30,000 most frequent words)
    korean     skip-gram on the Korean corpus (365k tokens)

Claims, decided from the English run by the protocol (hfrepro/claims.py), each rule fixed before the run:
    w2v-skipgram-semantic  skip-gram's accuracy minus CBOW's on the semantic questions both cover, > 0;
                           paired bootstrap over those questions (Mikolov et al. 2013: 55% vs 24%)
    w2v-cbow-syntactic     CBOW's accuracy minus skip-gram's on the covered syntactic questions, > 0; paired
                           bootstrap (the paper's other direction: CBOW 64% vs skip-gram 59%)
    w2v-cbow-faster        CBOW's training words/s over skip-gram's, > 1; bootstrap over the repeated timings
                           (TIMINGS per epoch, the same stretches of text for both modes)
    w2v-king-queen         queen's rank among the nearest words to king - man + woman (skip-gram; inputs
                           excluded; among the benchmark's restrict_vocab words), <= 5; an exact rank of one
                           trained model (no interval: the seeds 0, 1, 2 of docs/embeddings.md show its spread)
A claim whose questions are fewer than MIN_QUESTIONS is not decided (INCONCLUSIVE, n/a).
The Korean run shows Hangul end to end and asks 한국 - 서울 + 파리 as a user would.
"""

from __future__ import annotations

import math
import shutil

import yaml

from hfrepro.claims import LEVEL, N_BOOT, Claim, Decision, StageContext, StageResult, decide, paired_bootstrap
from hfrepro.embeddings import vectors
from hfrepro.embeddings.evaluate import load_questions, paired_answers
from hfrepro.embeddings.results import results_markdown
from hfrepro.embeddings.text import load_corpus
from hfrepro.errors import UserError
from hfrepro.fsutil import read_json
from hfrepro.report import md_table
from hfrepro.reproduce.plan import RecipeRun

CLAIMS = [
    Claim("w2v-skipgram-semantic", "Skip-gram beats CBOW on semantic analogies (Mikolov et al. 2013: 55% vs 24%)"),
    Claim("w2v-cbow-syntactic", "CBOW beats skip-gram on syntactic analogies (Mikolov et al. 2013: 64% vs 59%)"),
    Claim("w2v-cbow-faster", "CBOW trains faster than skip-gram"),
    Claim("w2v-king-queen", "king − man + woman lands near queen"),
]
RUNS = [RecipeRun("word2vec"), RecipeRun("word2vec", name="korean", config="word2vec/korean")]

MIN_QUESTIONS = 50
KING_QUEEN_TOPN = 5
KOREAN_ANALOGY = ("한국", "서울", "파리")  # 한국 - 서울 + 파리 ≈ 프랑스 ?
KOREAN_EXPECT = "프랑스"
KOREAN_PROBES = ("대통령", "국회", "문서", "데이터")
NA = math.nan


def direction(metrics: dict, category: str, better: str, worse: str, claim: str, paper: str) -> Decision:
    """`better` − `worse` accuracy on the `category` questions both modes cover, paired bootstrap, > 0."""
    names = {"cbow": "CBOW", "skipgram": "skip-gram"}
    stat = f"{names[better]} − {names[worse]} {category} accuracy"
    a, b = (metrics.get(m, {}).get("analogies") or {} for m in (worse, better))
    if not a.get("answers") or not b.get("answers"):
        return decide(claim, stat, NA, NA, NA, 0.0, evidence="not measured (no analogy answers in the run)")
    qs = load_questions(b.get("source") or "questions-words")
    x, y = paired_answers(a["answers"], b["answers"], category, qs)
    if len(x) < MIN_QUESTIONS:
        return decide(claim, stat, NA, NA, NA, 0.0, evidence=f"only {len(x)} {category} questions covered "
                      f"(< {MIN_QUESTIONS}): not measurable at this size")
    ev = (f"{names[better]} {sum(y) / len(y):.1%} vs {names[worse]} {sum(x) / len(x):.1%} on {len(x):,} covered "
          f"{category} questions (of {a[category]['questions']:,}); paper: {paper}")
    return decide(claim, stat, *paired_bootstrap(x, y), 0.0,
                  uncertainty=f"paired bootstrap over {len(x):,} questions", evidence=ev)


def speed_ratio(cbow: list, sg: list, *, seed: int = 0) -> tuple[float, float, float, int]:
    """(CBOW words/s ÷ skip-gram words/s, lo, hi, stretches): each mode's words/s over the same stretches of
    text, the stretches resampled together (bootstrap over repeated timings)."""
    import numpy as np

    n = min(len(cbow), len(sg))
    if n < 2:
        return NA, NA, NA, n
    c, s = np.asarray(cbow[:n], dtype=float), np.asarray(sg[:n], dtype=float)  # rows: [epoch, tokens, seconds]
    idx = np.random.default_rng(seed).integers(0, n, size=(N_BOOT, n))
    boot = (c[idx, 1].sum(1) / c[idx, 2].sum(1)) / (s[idx, 1].sum(1) / s[idx, 2].sum(1))
    lo, hi = np.quantile(boot, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    return float((c[:, 1].sum() / c[:, 2].sum()) / (s[:, 1].sum() / s[:, 2].sum())), float(lo), float(hi), n


def king_queen(metrics: dict) -> Decision:
    stat = "rank of queen among the words nearest to king − man + woman (skip-gram)"
    kq = metrics.get("skipgram", {}).get("king_queen") or {}
    if kq.get("rank") is None:
        why = (f"{', '.join(kq['missing'])} not in the vocabulary" if kq.get("missing") else
               "queen is not among the evaluated words" if kq else "not measured")
        return decide("w2v-king-queen", stat, NA, NA, NA, KING_QUEEN_TOPN + 0.5, higher=False, evidence=why)
    ck = (metrics.get("cbow", {}).get("king_queen") or {}).get("rank")
    top = ", ".join(w for w, _ in kq["top"][:3])
    among = f"the {kq['restrict_vocab']:,} most frequent words" if kq.get("restrict_vocab") else "the vocabulary"
    r = float(kq["rank"])
    return decide("w2v-king-queen", stat, r, r, r, KING_QUEEN_TOPN + 0.5, higher=False,
                  uncertainty=f"the exact rank in this run's model, among {among}; top {KING_QUEEN_TOPN} needed",
                  evidence=f"cosine {kq['cosine']:.2f}; top 3: {top}; CBOW: #{ck}")


def claims_from(metrics: dict) -> dict[str, Decision]:
    """Each claim's Decision from the English run's metrics."""
    out = {
        "w2v-skipgram-semantic": direction(metrics, "semantic", "skipgram", "cbow", "w2v-skipgram-semantic",
                                           "55% vs 24%"),
        "w2v-cbow-syntactic": direction(metrics, "syntactic", "cbow", "skipgram", "w2v-cbow-syntactic",
                                        "64% vs 59%"),
        "w2v-king-queen": king_queen(metrics)}
    c, s = metrics.get("cbow", {}), metrics.get("skipgram", {})
    est, lo, hi, n = speed_ratio(c.get("segments") or [], s.get("segments") or [])
    ev = (f"CBOW {c.get('words_per_sec') or 0:,.0f} vs skip-gram {s.get('words_per_sec') or 0:,.0f} training "
          f"words/s over the whole run, {metrics.get('corpus', {}).get('tokens', 0):,}-token corpus, same settings, "
          "the two trained at the same time on one core each")
    out["w2v-cbow-faster"] = decide("w2v-cbow-faster", "CBOW words/s ÷ skip-gram words/s", est, lo, hi, 1.0,
                                    uncertainty=f"bootstrap over {n} timed stretches of text", evidence=ev)
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
               "(`hfrepro word2vec --corpus your_korean_text.txt`), and no package of PyPI, Debian or npm was "
               "found to ship such text (the search: docs/embeddings.md, Korean).", ""]
    else:
        near = ", ".join(f"{w} ({s:.2f})" for w, s in demo["nearest"])
        md += [f"한국 − 서울 + 파리 ≈ {near}; 프랑스 is #{demo['rank_of_expected']}. Occurrences: {counts}.", ""]
    if demo["neighbours"]:
        md += ["Nearest words in the Korean model (Hangul works end to end):", "",
               md_table([{"word": w, "nearest": ", ".join(n)} for w, n in demo["neighbours"].items()]), ""]
    return md
