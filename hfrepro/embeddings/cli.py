"""`hfrepro embeddings ...`: stage 1's tools. Training is `hfrepro word2vec` (= python recipes/word2vec.py).

    hfrepro embeddings pairs "The fat cat sat on the mat" --window 2 --mode skipgram
    hfrepro embeddings analogy king man woman               # king - man + woman
    hfrepro embeddings similar queen
    hfrepro embeddings evaluate --vectors runs/word2vec/cbow
    hfrepro embeddings plot --pairs man:woman,king:queen --out pca.png
    hfrepro embeddings classify --data my_reviews.tsv --label_column label

Without --vectors the commands use the skip-gram vectors of the default run (runs/word2vec/skipgram).
"""

from __future__ import annotations

import json
import os

from hfrepro.embeddings import classify as C
from hfrepro.embeddings import evaluate as E
from hfrepro.embeddings import pairs as P
from hfrepro.embeddings import vectors
from hfrepro.embeddings.plot import parse_pairs, plot
from hfrepro.embeddings.text import detect_language
from hfrepro.errors import UserError
from hfrepro.report import md_table


def _vectors_arg(p) -> None:
    p.add_argument("--vectors", default=None,
                   help="a model folder written by `hfrepro word2vec` (e.g. runs/word2vec/cbow; a run folder "
                        "means its skip-gram model), a word2vec .txt/.bin file, or a gensim .kv file "
                        "(default: runs/word2vec/skipgram)")


def register(sub) -> None:
    p = sub.add_parser("embeddings", help="stage 1: word2vec pairs, analogies, neighbours, evaluation, plots",
                       description="Stage 1 tools: word2vec training pairs, analogies, nearest words, benchmark "
                                   "evaluation, PCA plot, classification from averaged word vectors.")
    s = p.add_subparsers(dest="embeddings_command", metavar="COMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])

    q = s.add_parser("pairs", help="the (centre, context) training pairs of CBOW / skip-gram for a sentence",
                     description="Print the training examples word2vec makes from one sentence, as the classic "
                                 "table does, and the one-hot vs dense picture for one word.")
    q.add_argument("sentence", nargs="?", default="The fat cat sat on the mat")
    q.add_argument("--window", type=int, default=2, help="context words on each side (default 2)")
    q.add_argument("--mode", default="both", choices=["cbow", "skipgram", "both"])
    q.add_argument("--word", default=None, help="word for the one-hot vs dense picture (default: the middle word)")
    q.add_argument("--vocab_size", type=int, default=10_000, help="vocabulary size for the one-hot picture")
    q.add_argument("--vectors", default=None, help="trained vectors for the dense picture (default: the default "
                                                   "run's skip-gram model if it exists)")
    q.set_defaults(func=_pairs)

    a = s.add_parser("analogy", help="a - b + c: `analogy king man woman` -> queen?",
                     description="The words nearest to a - b + c by cosine (gensim's most_similar, the three "
                                 "inputs excluded). `analogy king man woman` asks: king is to man as ? is to woman.")
    a.add_argument("a")
    a.add_argument("b")
    a.add_argument("c")
    a.add_argument("--topn", type=int, default=10)
    a.add_argument("--expect", default=None, help="also print the rank of this word (e.g. queen)")
    a.add_argument("--json", action="store_true", help="print JSON")
    _vectors_arg(a)
    a.set_defaults(func=_analogy)

    n = s.add_parser("similar", help="the nearest words to WORD", description="Nearest words by cosine.")
    n.add_argument("word")
    n.add_argument("--topn", type=int, default=10)
    n.add_argument("--json", action="store_true", help="print JSON")
    _vectors_arg(n)
    n.set_defaults(func=_similar)

    e = s.add_parser("evaluate", help="questions-words, WordSim353, SimLex-999 (accuracy, Spearman, coverage)",
                     description="Evaluate word vectors with gensim's protocol: analogy accuracy per section "
                                 "(semantic / syntactic) over the questions the vocabulary covers, and Spearman's "
                                 "rho on word-similarity sets, each with its coverage.")
    _vectors_arg(e)
    e.add_argument("--analogies", default="questions-words",
                   help="questions-words, or a file in its format (': section' lines, then 'a b c d'); '' to skip")
    e.add_argument("--pairs", default="wordsim353,simlex999",
                   help="comma-separated: wordsim353, simlex999, or TSV files 'word1<TAB>word2<TAB>score'")
    e.add_argument("--restrict_vocab", type=int, default=300_000, help="only the N most frequent words count")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=_evaluate)

    pl = s.add_parser("plot", help="2-D PCA plot (PNG) of word pairs with their analogy offsets",
                      description="Project chosen words to 2-D with PCA and draw each pair as an arrow, with a "
                                  "star at a - b + c.")
    _vectors_arg(pl)
    pl.add_argument("--pairs", default="man:woman,king:queen,father:mother,son:daughter,brother:sister,he:she",
                    help="from:to pairs, comma-separated")
    pl.add_argument("--analogy", default="king,man,woman", help="a,b,c: the star is at a - b + c ('' for none)")
    pl.add_argument("--out", default="analogy_pca.png", help="PNG file to write")
    pl.set_defaults(func=_plot)

    c = s.add_parser("classify", help="classification from averaged word vectors vs majority and bag of words",
                     description="Train logistic regression on averaged word vectors, against a majority-class "
                                 "and a bag-of-words (TF-IDF) baseline, on a labelled dataset: the default is "
                                 "which LibreOffice module a help paragraph comes from; or your own .tsv/.csv/"
                                 ".jsonl file with a text and a label column (split 80/10/10 with --seed).")
    _vectors_arg(c)
    c.add_argument("--data", default="lo-help-en", help="lo-help-en, lo-help-ko, a dataset name, or a file")
    c.add_argument("--text_column", default="text")
    c.add_argument("--label_column", default="label", help="label column (lo-help-*: module)")
    c.add_argument("--language", default="auto", choices=["auto", "en", "ko"])
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=_classify)


def _load(path):
    return vectors.load(path), vectors.label(path)


def _pairs(args) -> int:
    modes = ["cbow", "skipgram"] if args.mode == "both" else [args.mode]
    for m in modes:
        print(P.pairs_table(args.sentence, args.window, m))
    words = P.sentence_words(args.sentence)
    word = args.word or words[len(words) // 2 - (1 if len(words) % 2 == 0 else 0)]
    kv, lbl = None, ""
    if args.vectors or vectors.default_vectors().exists():
        kv, lbl = _load(args.vectors)
    print(P.one_hot_picture(args.sentence, word, args.vocab_size, kv, lbl,
                            compare=["dog", "kitten", "mat", "king"] if kv is not None else ()))
    return 0


def _analogy(args) -> int:
    kv, lbl = _load(args.vectors)
    res = vectors.analogy(kv, args.a, args.b, args.c, topn=args.topn, where=lbl)
    out = {"query": f"{args.a} - {args.b} + {args.c}", "vectors": lbl, "nearest": res}
    if args.expect:
        rank, cos = vectors.rank_of(kv, args.a, args.b, args.c, args.expect)
        if rank is None:
            vectors.require_words(kv, [args.expect], lbl)
        out["expect"] = {"word": args.expect, "rank": rank, "cosine": cos}
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(f"{args.a} − {args.b} + {args.c} ≈   ({lbl})")
    for k, (w, s) in enumerate(res, 1):
        print(f"  {k:2d}. {w:<20} {s:.3f}")
    if args.expect:
        e = out["expect"]
        print(f"  '{args.expect}' is number {e['rank']} (cosine {e['cosine']:.3f})")
    return 0


def _similar(args) -> int:
    kv, lbl = _load(args.vectors)
    res = vectors.similar(kv, args.word, topn=args.topn, where=lbl)
    if args.json:
        print(json.dumps({"word": args.word, "vectors": lbl, "nearest": res}, ensure_ascii=False, indent=2))
        return 0
    print(f"nearest to {args.word}   ({lbl})")
    for k, (w, s) in enumerate(res, 1):
        print(f"  {k:2d}. {w:<20} {s:.3f}")
    return 0


def _evaluate(args) -> int:
    from threadpoolctl import threadpool_limits

    vectors.quiet_gensim()
    kv, lbl = _load(args.vectors)
    pair_sets = [p.strip() for p in args.pairs.split(",") if p.strip()]
    if not args.analogies and not pair_sets:
        raise UserError("nothing to evaluate", fix="give --analogies and/or --pairs")
    with threadpool_limits(int(os.environ.get("HFREPRO_THREADS", 0)) or None):
        res = E.evaluate_all(kv, analogies=args.analogies or None, pair_sets=pair_sets,
                             restrict_vocab=args.restrict_vocab)
    if args.json:
        print(json.dumps(res, ensure_ascii=False, indent=2))
        return 0
    print(f"vectors: {lbl} ({len(kv):,} words, {kv.vector_size} dimensions)\n")
    if "analogies" in res:
        a = res["analogies"]
        print(f"analogies ({a['source']}): {a['total']['covered']:,} of {a['total']['questions']:,} questions "
              f"covered by the vocabulary ({a['total']['coverage']:.1%}); accuracy over the covered ones:\n")
        print(md_table(E.section_table(res)))
    rows = [{"set": k, "pairs": v["pairs"], "covered": v["covered"], "coverage": v["coverage"],
             "Spearman ρ": v["spearman"], "Pearson r": v["pearson"]} for k, v in res.items() if k != "analogies"]
    if rows:
        print(md_table(rows))
    return 0


def _plot(args) -> int:
    kv, lbl = _load(args.vectors)
    analogy = [w.strip() for w in args.analogy.split(",") if w.strip()] or None
    if analogy and len(analogy) != 3:
        raise UserError(f"--analogy needs three words a,b,c, got {args.analogy!r}")
    info = plot({lbl: kv}, args.out, parse_pairs(args.pairs), analogy)
    missing = sorted({w for v in info.values() for w in v["missing"]})
    print(f"wrote {args.out}" + (f" (not in the vocabulary, left out: {', '.join(missing)})" if missing else ""))
    return 0


def _classify(args) -> int:
    from threadpoolctl import threadpool_limits

    kv, lbl = _load(args.vectors)
    language = args.language
    if language == "auto":
        language = "ko" if args.data == "lo-help-ko" else None
    if language is None:
        task = C.load_task(args.data, args.text_column, args.label_column, args.seed)
        language = detect_language(task["train"][0][:500])
    with threadpool_limits(1):
        res = C.run({"word2vec": kv}, args.data, args.text_column, args.label_column, language=language,
                    seed=args.seed)
    if args.json:
        print(json.dumps(res, ensure_ascii=False, indent=2))
        return 0
    print(f"{res['task']}: {res['train']:,} train / {res['test']:,} test, {len(res['labels'])} classes "
          f"({res['label_column']}); vectors {lbl}\n")
    print(md_table(C.table(res)))
    return 0

