"""Stage 3: translation with a GRU encoder-decoder, the same with Bahdanau attention, and a small Transformer,
trained on the same data, tokenizer and number of updates, scored with BLEU and chrF (sacrebleu) overall and
by source-sentence length (the figure of Bahdanau et al. 2014).

Usage:
    python recipes/seq2seq.py                                   # all three archs, recipes/configs/seq2seq.yaml
    python recipes/seq2seq.py --arch rnn_attention --max_steps 500 --output_dir runs/s2s-att
    python recipes/seq2seq.py --dataset lo-help-en-fr --output_dir runs/seq2seq-fr
    python recipes/seq2seq.py --dataset my_pairs.tsv --source_lang en --target_lang de   # your own pairs
    accelerate launch --config_file accelerate_config.yaml recipes/seq2seq.py
    hfrepro seq2seq --help
    hfrepro translate --model runs/seq2seq/rnn_attention "Choose Format - Character."

Interrupted? Run the same command again: each arch resumes from its last checkpoint, finished archs are reused.
"""

from hfrepro.config import parse_args
from hfrepro.errors import run_main
from hfrepro.hub import HubArguments, hub_request, push_folder
from hfrepro.seq2seq.train import Seq2SeqArguments, parse_archs


def main():
    args, hub = parse_args((Seq2SeqArguments, HubArguments), config="seq2seq")
    req = hub_request(args, hub, default_name="hfrepro-seq2seq")  # fails here, before training
    from hfrepro.seq2seq import train
    summary = train.run(args)
    if summary is None:  # not the main process
        return
    for arch in summary["archs"]:
        print(f"{arch:14s} BLEU {summary[f'{arch}_bleu']:6.2f}  chrF {summary[f'{arch}_chrf']:6.2f}")
    print(f"results: {args.output_dir}/results.md, {args.output_dir}/bleu_by_length.png")
    if req:
        import dataclasses
        from pathlib import Path
        archs = parse_archs(args.arch)
        for arch in archs:  # one Hub repo per model: <id> for one arch, <id>-<arch> for several
            r = req if len(archs) == 1 else dataclasses.replace(req, repo_id=f"{req.repo_id}-{arch}")
            print(f"pushed to {r.repo_id}: {push_folder(Path(args.output_dir) / arch, r)}")

if __name__ == "__main__":
    run_main(main)
