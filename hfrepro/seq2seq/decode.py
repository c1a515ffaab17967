"""Use a trained model: load a saved folder, translate (greedy or beam search, batched, for the GRU models and
the Transformer alike), read the attention weights of one sentence, and check that the decoder uses its source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from hfrepro.errors import UserError
from hfrepro.seq2seq.data import encode, features
from hfrepro.seq2seq.rnn import GRUSeq2Seq

ARCHS = ("rnn", "rnn_attention", "transformer")


def arch_of(model) -> str:
    if getattr(model.config, "model_type", "") != "hfrepro-gru-seq2seq":
        return "transformer"
    return "rnn_attention" if model.config.attention else "rnn"


def resolve_model_dir(path: str | Path) -> Path:
    """A model folder: the folder itself (an arch's run folder, RUN/<arch>, is its model's repository) or the one
    arch folder of a run folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"model not found: {path}", fix="give a run folder written by `hfrepro seq2seq` "
                                                         "(e.g. runs/seq2seq/rnn_attention)")
    if (p / "config.json").is_file():
        return p
    found = [a for a in ARCHS if (p / a / "config.json").is_file()]
    if len(found) == 1:
        return p / found[0]
    if found:
        raise UserError(f"{p} holds {len(found)} models ({', '.join(found)}): say which",
                        fix=f"e.g. --model {p / found[-1]}")
    raise UserError(f"no translation model in {p} (no config.json in it or in <arch>/)",
                    fix="train one first: hfrepro seq2seq --arch rnn_attention")


def load_model(path: str | Path):
    """(model, tokenizer) from a saved folder (GRU: hfrepro's own class; Transformer: MarianMT or M2M100)."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    d = resolve_model_dir(path)
    try:
        model_type = json.loads((d / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {d / 'config.json'}: {e}", where=str(d)) from None
    if model_type in ("m2m_100", "marian"):
        model = AutoModelForSeq2SeqLM.from_pretrained(d)
    elif model_type == "hfrepro-gru-seq2seq":
        model = GRUSeq2Seq.from_pretrained(d)
    else:
        raise UserError(f"{d} holds a {model_type!r} model, not a translation model trained by hfrepro",
                        fix="point at a folder written by `hfrepro seq2seq`")
    tok = AutoTokenizer.from_pretrained(d)
    return model.eval(), tok


def max_new_tokens_for(src_len: int, cap: int = 256) -> int:
    """Room for the output: twice the source plus 10 tokens, at most `cap`."""
    return min(cap, 2 * src_len + 10)


def translate(model, tok, texts: Sequence[str], num_beams: int = 1, batch_size: int = 64,
              max_source_tokens: int = 256, progress: bool = False, desc: str = "translating",
              no_repeat_ngram_size: int = 0) -> list[str]:
    """Translations of `texts`, in order. Batches hold sentences of similar length (sorted), so little is padded.
    `no_repeat_ngram_size` n > 0: no n-gram of output tokens twice (a guard against loops; 0: off)."""
    import torch
    from tqdm.auto import tqdm

    ids = encode(tok, texts, max_len=max_source_tokens)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out: list[str | None] = [None] * len(ids)
    model.eval()
    bar = tqdm(total=len(ids), desc=desc, disable=not progress, leave=False)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        batch = tok.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
        kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], num_beams=num_beams,
                  max_new_tokens=max_new_tokens_for(batch["input_ids"].size(1)))
        if no_repeat_ngram_size:
            kw["no_repeat_ngram_size"] = no_repeat_ngram_size
        with torch.no_grad():
            if arch_of(model) == "transformer":
                gen = model.generate(**kw, do_sample=False, early_stopping=True if num_beams > 1 else False)
            else:
                gen = model.generate(**kw)
        for i, text in zip(idx, tok.batch_decode(gen, skip_special_tokens=True)):
            out[i] = text.strip()
        bar.update(len(idx))
    bar.close()
    return out  # type: ignore[return-value]


def attention_map(model, tok, text: str, max_source_tokens: int = 256):
    """Greedy translation of one sentence with its attention weights (GRU attention model):
    (source tokens, output tokens, weights [output, source], translation)."""
    import torch

    if arch_of(model) != "rnn_attention":
        raise UserError("attention weights are shown for the GRU attention model only",
                        fix="use a model trained with --arch rnn_attention")
    ids = encode(tok, [text], max_len=max_source_tokens)[0]
    x = torch.tensor([ids])
    with torch.no_grad():
        out, attn = model.generate(x, max_new_tokens=max_new_tokens_for(len(ids)), return_attentions=True)
    out_ids = out[0].tolist()
    if tok.eos_token_id in out_ids:
        out_ids = out_ids[:out_ids.index(tok.eos_token_id) + 1]
    weights = attn[0, :len(out_ids)].float().numpy()  # bf16 under --precision bf16
    return ([_piece(tok, i) for i in ids], [_piece(tok, i) for i in out_ids], weights,
            tok.decode(out_ids, skip_special_tokens=True).strip())


def _piece(tok, i: int) -> str:
    if i == tok.eos_token_id:
        return "</s>"
    text = tok.decode([i]).replace(" ", "▁")
    return "".join(c if c.isprintable() else "?" for c in text)  # a lone byte of a multi-byte character


def source_dependence(model, tok, test, n: int = 256, chunk: int = 32) -> dict:
    """Teacher-forced test loss with each sentence's own source, and with the next sentence's source instead.
    Equal losses mean the decoder ignores the source (it is only a language model of the target so far).
    `chunk` sentences at a time, each chunk's mean weighted by its target tokens: the mean over all of them, without
    the whole batch's logits at once (256 sentences of a 3,000-token vocabulary: a 1 GB spike)."""
    import torch
    from transformers import DataCollatorForSeq2Seq

    feats = list(features(tok, test.select(range(min(n, len(test))))))
    collate = DataCollatorForSeq2Seq(tok, model=model if hasattr(model, "prepare_decoder_input_ids_from_labels")
                                     else None, padding=True, label_pad_token_id=-100)
    other = [{**feats[i - 1], "labels": f["labels"]} for i, f in enumerate(feats)]   # the previous one's source
    sums, tokens = [0.0, 0.0], 0
    with torch.no_grad():
        for s in range(0, len(feats), chunk):
            k = sum(len(f["labels"]) for f in feats[s:s + chunk])
            for j, rows in enumerate((feats, other)):
                sums[j] += model(**collate(rows[s:s + chunk])).loss.item() * k
            tokens += k
    return {"test_loss": round(sums[0] / tokens, 4), "test_loss_other_source": round(sums[1] / tokens, 4)}
