"""Word n-gram language models of Shakespeare's plays: unigram, add-k bigram and interpolated Kneser-Ney.

The counting end of the perplexity ladder (Chen & Goodman 1998; Jurafsky & Martin ch. 3). Words are
GPT-2-style pre-tokens; words seen fewer than `min_count` times become <unk>, whose spelling a character
model prices, so every character of the held-out text is paid for. The models count all of the training
split (seconds: hfrepro.lm.ngram stores each order as sorted arrays of packed n-gram ids), the bigram's k is
chosen on validation text, and each model is scored in bits per character on held-out speeches. Every
model gets its own folder (counts as safetensors, vocab.json, speller.json, config.json, card).

Usage:
    hfrepro ngram                                            # recipes/configs/ngram/default.yaml
    hfrepro ngram --budget tiny --output_dir runs/ngram-tiny
    hfrepro ngram --kn_orders 2 3 4 --min_count 1 --output_dir runs/ngram-4
    hfrepro ngram --eval_max_chars 40000 --val_max_chars 40000    # the numbers docs/lm.md quotes for the recipe
    hfrepro perplexity --model runs/ngram                    # its highest-order Kneser-Ney model on held-out text
"""

import time
from dataclasses import dataclass, field

from hfrepro import runtime
from hfrepro.cards import write_model_card
from hfrepro.config import OutputArguments, RunArguments, parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.lm.ngram import (
    AddKLM,
    KneserNeyLM,
    NgramLM,
    SpellingModel,
    Vocabulary,
    choose_k,
    describe,
    score_documents,
)
from hfrepro.lm.text import load_corpus, pretokenize
from hfrepro.report import md_table


@dataclass
class ScriptArguments:
    dataset: str = field(default="shakespeare", metadata={"help": "embedded dataset name, saved dataset folder "
                                                                  "or .txt file (one document per line)"})
    text_column: str = field(default="text", metadata={"help": "the column holding the text"})
    min_count: int = field(default=2, metadata={"help": "words seen fewer times in training become <unk>"})
    kn_orders: list[int] = field(default_factory=lambda: [2, 3], metadata={"help": "Kneser-Ney orders to fit"})
    bigram_k_grid: list[float] = field(default_factory=lambda: [1.0, 0.1, 0.03, 0.01, 0.003, 0.001],
                                       metadata={"help": "add-k values tried for the bigram (best on validation)"})
    eval_max_chars: int = field(default=40000, metadata={"help": "held-out test characters scored"})
    val_max_chars: int = field(default=40000, metadata={"help": "validation characters for choosing k"})


def main(script_args: ScriptArguments, output_args: OutputArguments, run_args: RunArguments) -> dict:
    config = resolved(script_args, output_args, run_args)
    push = hub_request(output_args, default_name="hfrepro-kneser-ney")  # fails now, not after counting
    runtime.setup(seed=output_args.seed, threads=run_args.threads, precision=run_args.precision)
    run = runtime.Run.begin(output_args.output_dir, config, overwrite=run_args.overwrite,
                            resume_from_checkpoint=output_args.resume_from_checkpoint, wait=run_args.wait)
    if run.finished:
        print(f"already fitted with this config: {run.path}/metrics.json")
        return run.metrics()
    if not run.is_main:
        return {}  # counting is not distributed: under `accelerate launch` one process does it

    # Data: training speeches as words; the held-out speeches (documents) that every stage-2 model is scored on.
    corpus = load_corpus(script_args.dataset, script_args.text_column)
    train = [pretokenize(line) for line in corpus.train]
    val_docs = corpus.documents("validation", script_args.val_max_chars, seed=output_args.seed)
    test_docs = corpus.documents("test", script_args.eval_max_chars, seed=output_args.seed)

    # Fit: the vocabulary, the spelling model for <unk> words, then each model on all of the training words.
    t0 = time.time()
    vocab = Vocabulary.build(train, min_count=script_args.min_count)
    speller = SpellingModel.fit(vocab, train)
    ids = [vocab.encode(words) for words in train]
    models: dict[str, NgramLM] = {"unigram": AddKLM(order=1, k=1.0).fit_ids(vocab, ids),
                                  "bigram": AddKLM(order=2).fit_ids(vocab, ids)}
    k_scores = choose_k(models["bigram"], speller, val_docs, script_args.bigram_k_grid)
    for n in script_args.kn_orders:
        models[f"kn{n}"] = KneserNeyLM(order=n).fit_ids(vocab, ids)
    fit_seconds = time.time() - t0

    # Evaluate: bits per character on the held-out speeches; save each model in its own folder.
    metrics, rows = {}, []
    for name, lm in models.items():
        r = metrics[name] = score_documents(lm, speller, test_docs)
        lm.save_pretrained(run.path / name, speller)
        write_card(run.path / name, lm, r, config, corpus.name)
        rows.append({"model": describe(lm), "bits per character": r["bits_per_character"],
                     "per-word perplexity": r["word_perplexity"],
                     "closed-vocab perplexity": r["closed_vocab_perplexity"], "OOV rate": r["oov_rate"]})
    metrics = run.finish({
        "dataset": corpus.name, "vocab_size": len(vocab), "train_tokens": sum(len(t) + 1 for t in train),
        "bigram_k": models["bigram"].k, "bigram_k_validation_bpc": {str(k): v for k, v in k_scores.items()},
        "fit_seconds": round(fit_seconds, 2), "test_chars": sum(map(len, test_docs)), **metrics,
        "table": md_table(rows)})
    print(metrics["table"])
    print(f"-> {run.path}/")
    if push:  # the highest-order Kneser-Ney model
        print(f"pushed to {push.repo_id}: {push_folder(run.path / f'kn{max(script_args.kn_orders)}', push)}")
    return metrics


def write_card(folder, lm: NgramLM, r: dict, config: dict, dataset: str) -> None:
    write_model_card(
        folder, title=f"{describe(lm)} word LM on {dataset} (hfrepro stage 2)", license="apache-2.0",
        datasets=[dataset], language=["en"], library_name="hfrepro", tags=["n-gram", "language-model"],
        pipeline_tag="text-generation",
        metrics={k: r[k] for k in ("bits_per_character", "word_perplexity", "closed_vocab_perplexity", "oov_rate")},
        config=config, eval_metrics=["bits_per_character", "word_perplexity"], eval_dataset=dataset,
        eval_split="test", command="hfrepro ngram --config ../config.yaml   # the run folder's config",
        how_to_load=("from huggingface_hub import snapshot_download\nfrom hfrepro.lm.ngram import NgramLM\n\n"
                     "lm, speller = NgramLM.from_pretrained(snapshot_download(\"path/to/this/folder\"))"),
        description=("Counts of a word n-gram model (safetensors: packed n-gram ids and their counts per order), "
                     "its vocabulary (vocab.json) and the character model that prices unknown words "
                     "(speller.json). Words are GPT-2-style pre-tokens (hfrepro.lm.text.pretokenize). Load with "
                     "`hfrepro.lm.ngram.NgramLM.from_pretrained(folder)`; score with "
                     "`hfrepro perplexity --model FOLDER`."),
        usage="Teaching: the counting baseline of the stage-2 perplexity ladder.",
        limits="Not a transformers model. Probabilities cover only this tokenisation of the text.")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, OutputArguments, RunArguments), recipe="ngram", argv=argv))


if __name__ == "__main__":
    run_main(cli)
