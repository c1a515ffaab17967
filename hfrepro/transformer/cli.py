"""Chapter commands: hfrepro tokenize | hfrepro transformer attention | positions | nextword | gradients.

    hfrepro tokenize --text "The quick brown fox jumped over the lazy dog."        # SmolLM2's BPE
    hfrepro tokenize --tokenizer runs/clm --text "오늘 나는 치킨을 먹었다"          # any tokenizer or model folder
    hfrepro transformer attention --model runs/clm --text "To be, or not to be" --out att.png
    hfrepro transformer attention --model minilm-l6 --text "The bank of the river." --out bert.png
    hfrepro transformer positions --model runs/clm --out positions.png
    hfrepro transformer nextword                                  # "오늘 나는 ___" with SmolLM2, future masked
    hfrepro transformer gradients --models runs/rnn runs/lstm --out decay.png   # runs of `hfrepro lstm --cell ...`

The whole chapter, measured and decided: `hfrepro reproduce --stages lm,transformer`.
"""

from __future__ import annotations

import json
from pathlib import Path

from hfrepro.errors import UserError
from hfrepro.lm.data import blocks, token_stream
from hfrepro.lm.scoring import load_lm, start_token_for
from hfrepro.lm.text import load_corpus
from hfrepro.models import load_tokenizer, resolve
from hfrepro.report import md_table
from hfrepro.runtime import configure_threads
from hfrepro.transformer import attention, gradients, nextword, positions, tokens


def register(sub) -> None:
    p = sub.add_parser("tokenize", help="chapter: BPE pieces and ids of a text, with tokens per character",
                       description="Split a text into a tokenizer's pieces: one row per token with its id, its "
                                   "vocabulary entry and the text it decodes to.")
    p.add_argument("--text", required=True)
    p.add_argument("--tokenizer", "--model", dest="tokenizer", default="smollm2-135m-instruct",
                   help="an embedded model name, a model or run folder (default: smollm2-135m-instruct)")
    p.set_defaults(func=_tokenize)

    t = sub.add_parser("transformer", help="chapter: inside the Transformer (attention, positions, next word, "
                                           "vanishing gradients)",
                       description="Draw what the chapter measures, for any model you give it.")
    s = t.add_subparsers(dest="what", required=True)
    a = s.add_parser("attention", help="attention maps per layer and head")
    a.add_argument("--model", required=True, help="a GPT run folder (runs/clm), a BERT (minilm-l6), or a seq2seq "
                                                  "transformer folder")
    a.add_argument("--text", required=True)
    a.add_argument("--out", default="attention.png")
    a.set_defaults(func=_attention)
    b = s.add_parser("positions", help="sinusoidal and a model's learned positional encodings")
    b.add_argument("--model", default=None, help="a GPT run folder or a BERT (its learned table)")
    b.add_argument("--out", default="positions.png")
    b.set_defaults(func=_positions)
    c = s.add_parser("nextword", help="the next word after a prefix, with the future masked")
    c.add_argument("--model", default="smollm2-135m-instruct")
    c.add_argument("--sentence", default=nextword.SENTENCE)
    c.add_argument("--prefix", default=nextword.PREFIX)
    c.add_argument("--candidates", nargs="+", default=[w.strip() for w in nextword.CANDIDATES])
    c.set_defaults(func=_nextword)
    d = s.add_parser("gradients", help="gradient norm against distance for recurrent LMs (hfrepro lstm --cell ...)")
    d.add_argument("--models", nargs="+", required=True, help="run folders of `hfrepro lstm --cell CELL`")
    d.add_argument("--distance", type=int, default=32)
    d.add_argument("--sequences", type=int, default=32)
    d.add_argument("--out", default="gradient_decay.png")
    d.set_defaults(func=_gradients)


def _model_type(path: str) -> str | None:
    cfg = Path(path) / "config.json"
    return json.loads(cfg.read_text(encoding="utf-8")).get("model_type") if cfg.is_file() else None


def _tokenizer(name: str):
    """A tokenizer folder (tokenizer.json), or anything a model loads from (a name, a model or run folder)."""
    if (Path(name) / "tokenizer.json").is_file():
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(name)
    return load_tokenizer(name)


def _tokenize(a) -> int:
    tok = _tokenizer(a.tokenizer)
    rows = tokens.pieces(a.text, tok)
    print(md_table(rows))
    if tok.is_fast and any(ord(c) > 0x7F for c in a.text):  # pieces of a byte-level BPE can be parts of a character
        print("tokens per character: " + ", ".join(f"{c} {n}" for c, n in tokens.per_character(a.text, tok)))
    print(f"{len(rows)} tokens for {len(a.text)} characters: {len(rows) / max(1, len(a.text)):.2f} tokens/char; "
          f"ids: {[r['id'] for r in rows]}")
    return 0


def _attention(a) -> int:
    from transformers import AutoModel

    configure_threads()
    path = resolve(a.model)
    kind = _model_type(path)
    if kind == "gpt2":
        model, tok, _ = load_lm(path)
        att = attention.gpt_attention(model, tok, a.text)
    elif kind == "bert":
        att = attention.encoder_attention(AutoModel.from_pretrained(path), load_tokenizer(path), a.text)
    elif kind in ("marian", "m2m_100"):
        from hfrepro.seq2seq.decode import load_model
        res = attention.translator_attention(*load_model(path), a.text)
        print(f"translation: {res['translation']}")
        att = res["cross"]
    else:
        raise UserError(f"{a.model} is a {kind!r} model", fix="use a GPT run folder, a BERT or a seq2seq transformer")
    attention.plot_attention(att["maps"], att["query"], att["key"], f"{a.model}: attention per layer and head", a.out)
    print(f"weight on later tokens: {attention.future_mass(att['maps']):.4f} (0 = causal) -> {a.out}"
          if len(att["query"]) == len(att["key"]) else f"-> {a.out}")
    return 0


def _positions(a) -> int:
    tables = {}
    if a.model:
        from transformers import AutoModel
        t = positions.learned(AutoModel.from_pretrained(resolve(a.model)))
        if t is None:
            raise UserError(f"{a.model} has no learned position table", fix="use a GPT run folder or a BERT")
        tables[f"learned: {a.model}"] = t[:128]
    tables = {"sinusoidal (128 x 128)": positions.sinusoidal(128, 128), **tables}
    positions.plot_positions(tables, a.out)
    print(f"-> {a.out}")
    return 0


def _nextword(a) -> int:
    configure_threads()
    model, tok, _ = load_lm(a.model)
    start = start_token_for(tok)
    sid = tok.convert_tokens_to_ids(start) if start else tok.bos_token_id
    fx = nextword.causal_future_effect(model, tok, a.sentence, a.prefix, start_id=sid)
    print(f"prediction after {a.prefix!r}: max change when the rest of the sentence is there: "
          f"{fx['max_abs_diff']:.2e} (the causal mask)")
    print(md_table(nextword.rank_next_words(model, tok, a.prefix, [" " + w for w in a.candidates], start_id=sid)))
    return 0


def _gradients(a) -> int:
    configure_threads()
    loaded = {Path(m).name: load_lm(m)[:2] for m in a.models}
    tok = next(iter(loaded.values()))[1]
    seqs = blocks(token_stream(tok, load_corpus("shakespeare").documents("test", 40000)), a.distance + 2)
    decays = {n: gradients.log_decay(gradients.input_gradient_norms(m, seqs[:a.sequences], a.distance))
              for n, (m, _) in loaded.items()}
    gradients.plot_decay(decays, a.out, a.distance)
    print(md_table([{"model": n, f"log10 ratio at k={a.distance}": float(d[:, -1].mean())} for n, d in decays.items()]))
    return 0
