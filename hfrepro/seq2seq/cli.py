"""`hfrepro translate`: translate text with a model trained by `hfrepro seq2seq` (recipes/seq2seq.py).

    hfrepro translate --model runs/seq2seq/rnn_attention "Choose Format - Character."
    hfrepro translate --model runs/seq2seq/transformer --num_beams 4 --file sentences.txt
    echo "Click OK." | hfrepro translate --model runs/seq2seq/rnn
    hfrepro translate --model runs/seq2seq/rnn_attention --heatmap att.png "Select the text you want to format."
"""

from __future__ import annotations

import sys
from pathlib import Path

from hfrepro.data import read_lines
from hfrepro.errors import UserError
from hfrepro.runtime import configure_threads
from hfrepro.seq2seq.report import plot_attention


def register(sub) -> None:
    p = sub.add_parser("translate", help="stage 3: translate text with a trained seq2seq model",
                       description="Translate sentences with a model trained by `hfrepro seq2seq` (GRU, GRU + "
                                   "attention, or Transformer). Text comes from the arguments, --file, or stdin "
                                   "(one sentence per line); translations go to stdout, one per line.")
    p.add_argument("text", nargs="*", help="sentence(s) to translate, each quoted as one argument")
    p.add_argument("--model", required=True,
                   help="an arch's run folder (runs/seq2seq/rnn_attention), or a run folder holding one arch")
    p.add_argument("--file", default=None, help="UTF-8 text file, one sentence per line")
    p.add_argument("--num_beams", type=int, default=4, help="beam size (1: greedy)")
    p.add_argument("--no_repeat_ngram_size", type=int, default=0,
                   help="never repeat an n-gram of output tokens (a guard against loops; 0: off)")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--heatmap", default=None,
                   help="PNG path: draw the attention weights of the first sentence (GRU attention model)")
    p.set_defaults(func=_translate)


def _translate(args) -> int:
    if args.num_beams < 1:
        raise UserError(f"--num_beams must be at least 1, got {args.num_beams}")
    if args.no_repeat_ngram_size < 0:
        raise UserError(f"--no_repeat_ngram_size must be 0 (off) or positive, got {args.no_repeat_ngram_size}")
    if args.text:
        if args.file:
            raise UserError("give sentences either as arguments or with --file, not both")
        texts = [t for t in args.text if t.strip()]
    elif args.file:
        texts = read_lines(args.file)
    elif not sys.stdin.isatty():
        texts = [ln.strip() for ln in sys.stdin.read().splitlines() if ln.strip()]
    else:
        raise UserError("nothing to translate", fix='pass a sentence: hfrepro translate --model RUN "Click OK."')
    if not texts:
        raise UserError("nothing to translate: the input is empty")

    # Imported here, not at the top: it loads torch and transformers (seconds), and `hfrepro --help` must stay fast.
    from hfrepro.seq2seq.decode import attention_map, load_model, translate

    configure_threads()
    model, tok = load_model(args.model)
    for line in translate(model, tok, texts, num_beams=args.num_beams, batch_size=args.batch_size,
                          no_repeat_ngram_size=args.no_repeat_ngram_size):
        print(line)
    if args.heatmap:
        src_t, out_t, w, translation = attention_map(model, tok, texts[0])
        plot_attention(src_t, out_t, w, Path(args.heatmap), f"attention weights (greedy)\n{texts[0][:90]}")
        print(f"attention heat map: {args.heatmap}", file=sys.stderr)
    return 0
