"""Stage 1: word2vec CBOW and skip-gram with gensim, evaluated on analogies and word similarity.

Trains both modes on every embedded English source (about 7.4M tokens) by default, then writes to
output_dir: the vectors of each mode (a complete Hub repo: safetensors + vocab, gensim KeyedVectors,
word2vec text format, model card), the CBOW vs skip-gram table (words/s, semantic / syntactic analogy
accuracy with coverage, WordSim353 / SimLex-999 Spearman), a PCA plot of the analogy offsets, and a
classification of LibreOffice help paragraphs from averaged word vectors against two baselines.

Usage:
    python recipes/word2vec.py                                  # recipes/configs/word2vec.yaml: 5 epochs
    python recipes/word2vec.py --epochs 1 --output_dir runs/w2v-1ep
    python recipes/word2vec.py --corpus korean --output_dir runs/word2vec-ko
    python recipes/word2vec.py --corpus my_text.txt --modes skipgram --classify my_labels.tsv \
        --classify_label_column label --output_dir runs/w2v-mine
    accelerate launch --config_file accelerate_config.yaml recipes/word2vec.py
    hfrepro word2vec --help

Interrupted? Run the same command again: it continues after the last finished epoch.
"""

from dataclasses import dataclass

from hfrepro.config import parse_args, resolved
from hfrepro.embeddings.train import Word2VecArguments, run
from hfrepro.errors import run_main
from hfrepro.hub import HubArguments, hub_request, push_folder


@dataclass
class Arguments(Word2VecArguments, HubArguments):
    pass


def main():
    (args,) = parse_args(Arguments, config="word2vec")
    req = hub_request(args, default_name="hfrepro-word2vec")  # fails here, before training, if it cannot push
    metrics = run(args, config=resolved(args))
    if metrics is None:  # not the main process of a multi-process launch
        return
    for mode in metrics["modes"]:
        m = metrics[mode]
        an = m.get("analogies")
        acc = (f", analogies semantic {an['semantic']['accuracy'] or 0:.1%} / syntactic "
               f"{an['syntactic']['accuracy'] or 0:.1%} ({an['total']['covered']:,} questions covered)" if an else "")
        print(f"{mode}: {m['words_per_sec']:,.0f} words/s, {m['vocab_size']:,} words{acc}")
    print(f"results: {args.output_dir}/results.md   vectors: {args.output_dir}/<mode>/ (Hub repo), "
          f"{args.output_dir}/gensim/<mode>.kv (KeyedVectors.load)")
    if req:
        for mode in metrics["modes"]:
            repo = req.repo_id if len(metrics["modes"]) == 1 else f"{req.repo_id}-{mode}"
            print("pushed:", push_folder(f"{args.output_dir}/{mode}", type(req)(repo, req.private, req.token)))


if __name__ == "__main__":
    run_main(main)
