"""Stage-2 commands: hfrepro generate | fill-mask | arch | perplexity.

    hfrepro generate --model runs/clm --prompt "ROMEO:" --temperature 0.8 --top_k 50 --top_p 0.95
    hfrepro generate --model smollm2-135m-instruct --prompt "Write a haiku about rain." --chat
    hfrepro fill-mask --model runs/mlm --text "Good <mask>, my lord."
    hfrepro arch                                   # GPT-1/2/3, BERT parameter counts vs the papers
    hfrepro perplexity --model runs/clm            # bits per character on held-out Shakespeare
    hfrepro perplexity --model smollm2-135m-instruct --file my.txt

Options are snake_case (`--top_k`); the dashed spellings (`--top-k`) are accepted too. `--model` is
`--model_name_or_path`.
"""

from __future__ import annotations

import json
import sys

from hfrepro import runtime
from hfrepro.data import read_lines
from hfrepro.errors import UserError
from hfrepro.lm.arch import TOLERANCE, markdown, table
from hfrepro.lm.sampling import generate, load_for_generation
from hfrepro.lm.scoring import score_model
from hfrepro.lm.text import load_corpus
from hfrepro.models import load_tokenizer, resolve
from hfrepro.report import md_table


def _model_option(p, help_: str) -> None:
    p.add_argument("--model_name_or_path", "--model", dest="model", required=True, help=help_)


def register(sub) -> None:
    p = sub.add_parser("generate", help="stage 2: sample text from a causal LM (pipeline text-generation)",
                       description="Sample continuations of a prompt. Temperature 0 is greedy decoding; top_k 0 "
                                   "and top_p 1 switch those filters off.")
    _model_option(p, "run folder (runs/clm), model folder, or embedded model name")
    p.add_argument("--prompt", required=True)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top_k", "--top-k", dest="top_k", type=int, default=0)
    p.add_argument("--top_p", "--top-p", dest="top_p", type=float, default=1.0)
    p.add_argument("--max_new_tokens", "--max-new-tokens", dest="max_new_tokens", type=int, default=60)
    p.add_argument("--num_return_sequences", "--num-return-sequences", "-n", dest="num_return_sequences", type=int,
                   default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    p.set_defaults(func=_generate)

    p = sub.add_parser("fill-mask", help="stage 2: top predictions of a masked LM (pipeline fill-mask)")
    _model_option(p, "an mlm run folder or model folder")
    p.add_argument("--text", required=True, help="text with the model's mask token, e.g. <mask> or [MASK]")
    p.add_argument("--top_k", "--top-k", dest="top_k", type=int, default=5)
    p.set_defaults(func=_fill_mask)

    p = sub.add_parser("arch", help="stage 2: GPT-1/2/3 and BERT parameter counts, built on the meta device",
                       description="Build each published architecture on torch's meta device (no memory), count "
                                   "its parameters and compare with the published number.")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a Markdown table")
    p.set_defaults(func=_arch)

    p = sub.add_parser("perplexity", help="stage 2: perplexity and bits per character of a model on held-out text",
                       description="Score held-out documents (default: the test split of the stage-2 corpus) "
                                   "with a causal LM (the project's evaluate perplexity metric), an LSTM run or "
                                   "an n-gram run or model folder. Bits per character compare models across "
                                   "tokenizers.")
    _model_option(p, "run/model folder (clm, lstm, ngram) or embedded model name")
    p.add_argument("--dataset", default="shakespeare", help="dataset whose test split is scored")
    p.add_argument("--file", default=None, help="score this UTF-8 text file instead (one document per line)")
    p.add_argument("--max_chars", "--max-chars", dest="max_chars", type=int, default=20000)
    p.add_argument("--max_length", "--max-length", dest="max_length", type=int, default=None,
                   help="window in tokens (default: the model's context, at most 1024)")
    p.add_argument("--stride", type=int, default=None, help="window step (default: half the window)")
    p.add_argument("--batch_size", "--batch-size", dest="batch_size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0, help="which held-out documents are drawn")
    p.set_defaults(func=_perplexity)


def _generate(a) -> int:
    runtime.setup(seed=a.seed)
    model, tok = load_for_generation(a.model)
    outs = generate(model, tok, a.prompt, temperature=a.temperature, top_k=a.top_k, top_p=a.top_p,
                    max_new_tokens=a.max_new_tokens, num_return_sequences=a.num_return_sequences, seed=a.seed,
                    chat=a.chat)
    for i, o in enumerate(outs):
        if len(outs) > 1:
            print(f"--- sample {i + 1}")
        print(o if a.chat else a.prompt + o)
    return 0


def _fill_mask(a) -> int:
    from transformers import AutoModelForMaskedLM, pipeline
    from transformers.utils import logging as hf_logging

    runtime.setup()
    path = resolve(a.model)
    tok = load_tokenizer(path)
    if tok.mask_token is None or tok.mask_token not in a.text:
        raise UserError(f"the text has no mask token {tok.mask_token!r}", fix=f"put {tok.mask_token} where the "
                        "word to predict goes")
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForMaskedLM.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{a.model} is not a masked LM: {str(e).splitlines()[0]}",
                        fix="use an mlm run folder (runs/mlm)") from None
    for r in pipeline("fill-mask", model=model, tokenizer=tok, top_k=a.top_k)(a.text):
        print(f"{r['score']:.3f}  {r['sequence']}")
    return 0


def _arch(a) -> int:
    rows = table()
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        print(markdown(rows))
        bad = [r["model"] for r in rows if not r["within tolerance"]]
        print(f"All {len(rows)} counts within {TOLERANCE:.0%} of the published numbers." if not bad else
              f"Outside {TOLERANCE:.0%}: {', '.join(bad)}")
    return 0


def _perplexity(a) -> int:
    runtime.setup(seed=a.seed)
    if a.file:
        docs = [ln + "\n" for ln in read_lines(a.file)]
        if not docs:
            raise UserError("the file has no text", where=a.file)
    else:
        docs = load_corpus(a.dataset).documents("test", a.max_chars, seed=a.seed)
    r = score_model(a.model, docs, max_length=a.max_length, stride=a.stride, batch_size=a.batch_size,
                    progress=sys.stderr.isatty())
    print(md_table([r], digits=3))
    return 0
