"""Perplexity and bits per character of a causal language model on texts, with a sliding window.

Written for hfrepro (not a copy of the Hub's `perplexity` module); loads offline by path:

    import evaluate
    ppl = evaluate.load("/abs/path/to/hfrepro/metrics/perplexity")
    ppl.compute(predictions=["To be, or not to be\\n"], model_id="runs/clm")        # a run or model folder
    ppl.compute(predictions=texts, model_name_or_path="smollm2-135m-instruct")       # an embedded model
    ppl.compute(predictions=texts, model=model, tokenizer=tok, max_length=128, stride=64)  # objects

Each text is scored on its own. With `add_start_token` (default) a start token (the tokenizer's bos, else
eos; or `start_token`) is put in front, so every token of the text, the first included, is predicted and
every character is paid for: `bits_per_character` = total negative log2-likelihood / total characters.

A text longer than `max_length` tokens is scored with a sliding window: windows of `max_length` tokens move
by `stride` (at most max_length - 1, so a window's first token is always context); each window scores only
the tokens the previous one did not, so every token is predicted exactly once, from at least
max(1, max_length - stride) tokens of context (all of its context inside the first window).
Windows of all texts are batched together (right-padded by the metric itself, whatever the tokenizer's
`padding_side`, with an attention mask), which gives the same numbers as one window at a time.

With `context` (a text), every text is scored after that text: `[start] + context + text`, only the text's
tokens are scored (the context is a prompt, never charged). The context's keys and values are computed once
and reused for every window (each window = the context + at most `max_length` - len(context) tokens).

A model named by a string is loaded the way every hfrepro command loads one (`hfrepro.models`): an embedded
model name, a run or model folder, a LoRA adapter folder, or a Hub id.

`model` may be any causal LM object whose call `model(input_ids=..., attention_mask=...)` returns an object
with `.logits` of shape (batch, length, vocab) -- a transformers model or a plain torch module.
"""

import copy
import math

import datasets
import evaluate
import torch

from hfrepro.models import load_causal_lm, load_tokenizer

_CITATION = """\
@article{jelinek1977perplexity,
  title={Perplexity -- a measure of the difficulty of speech recognition tasks},
  author={Jelinek, Fred and Mercer, Robert L. and Bahl, Lalit R. and Baker, James K.},
  journal={The Journal of the Acoustical Society of America}, volume={62}, number={S1}, year={1977}}
"""

_DESCRIPTION = """\
Perplexity is the exponential of the average negative log-likelihood per token a causal language model
assigns to a text: exp(-1/N sum_i log p(x_i | x_<i)). Lower is better. Token perplexities of models with
different tokenizers are not comparable; bits per character (total -log2 p over total characters) is.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): the texts to score, each on its own.
    model_id (str): the causal LM to load, when `model` is not given: an embedded model name, a run or model
        folder, a LoRA adapter folder, or a Hub id. `model_name_or_path` is the same (the name hfrepro's
        commands and TRL use).
    model: a causal LM object (returns `.logits`; needs `tokenizer`, or `model_id` for the tokenizer), or a name
        as for `model_id`.
    tokenizer: the model's tokenizer.
    trust_remote_code (bool): let a loaded folder run its own model code (e.g. an hfrepro LSTM run folder).
    batch_size (int): windows per forward pass (default 8).
    add_start_token (bool): put a start token in front so the first token is scored too (default True).
    start_token (str): the start token (default: the tokenizer's bos token, else its eos token).
    context (str): a text put before every text (after the start token) and not scored: a prompt.
    max_length (int): window length in tokens (default: the model's context size).
    stride (int): how far the window moves (default max_length // 2).
    device (str): where to run (default: where the model is; "cuda" if available when loading).
    progress (bool): show a progress bar.
Returns:
    perplexities: per-text perplexity (nan for a text with no scored token),
    mean_perplexity: their mean,
    perplexity: corpus perplexity, exp(total nll / total scored tokens),
    nll: total negative log-likelihood in nats, num_tokens: scored tokens,
    nlls, token_counts: the same per text (in the order of `predictions`),
    num_chars: characters of the texts, bits_per_character: total bits / num_chars (None without a start token),
    max_length, stride: the window actually used.
Examples:
    >>> ppl = evaluate.load("hfrepro/metrics/perplexity")   # an absolute path works from anywhere
    >>> r = ppl.compute(predictions=["Hello world\\n"], model=model, tokenizer=tok)
    >>> round(r["perplexity"], 2)
"""


class Perplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
            reference_urls=["https://huggingface.co/docs/transformers/perplexity"],
        )

    def _compute(self, predictions, model_id=None, model=None, tokenizer=None, batch_size=8,
                 add_start_token=True, start_token=None, max_length=None, stride=None, device=None,
                 progress=False, model_name_or_path=None, trust_remote_code=False, context=None):
        model, tokenizer, device = _load(model_name_or_path or model_id, model, tokenizer, device, trust_remote_code)
        max_length = int(max_length or _context_size(model))
        start_id = _start_id(tokenizer, start_token) if add_start_token else None
        # With a context: [start] + context[:-1] is computed once (a cache); its last token starts every text.
        prefix = ([start_id] if start_id is not None else []) + (
            tokenizer(context, add_special_tokens=False, verbose=False)["input_ids"] if context else [])
        cached, first_id = (prefix[:-1], prefix[-1]) if context else ([], start_id)
        max_length -= len(cached)
        stride = int(stride or max(1, max_length // 2))
        if not 0 < stride <= max_length:
            raise ValueError(f"stride must be in 1..max_length ({max_length}), got {stride}")
        if first_id is not None and max_length < 2:
            raise ValueError("max_length must be at least 2 (more than the context's length)")
        windows, n_tokens = _windows(tokenizer, predictions, first_id, max_length, stride)
        nll = _score(model, windows, len(predictions), _pad_id(tokenizer), batch_size, device, progress, cached)
        total_nll, total_tok = sum(nll), sum(n_tokens)
        ppls = [math.exp(a / n) if n else float("nan") for a, n in zip(nll, n_tokens)]
        finite = [p for p in ppls if not math.isnan(p)]
        chars = sum(len(t) for t in predictions)
        return {
            "perplexities": ppls,
            "mean_perplexity": sum(finite) / len(finite) if finite else float("nan"),
            "perplexity": math.exp(total_nll / total_tok) if total_tok else float("nan"),
            "nll": total_nll,
            "num_tokens": total_tok,
            "nlls": nll,
            "token_counts": n_tokens,
            "num_chars": chars,
            "bits_per_character": (total_nll / math.log(2) / chars) if (start_id is not None and chars) else None,
            "max_length": max_length,
            "stride": stride,
        }


def _load(name, model, tokenizer, device, trust_remote_code):
    """(model, tokenizer, device). `name` (or `model` given as a string) is anything an hfrepro command takes:
    an embedded model name, a run or model folder, a LoRA adapter folder, a Hub id."""
    if isinstance(model, str):
        name, model = model, None
    if model is None:
        if not name:
            raise ValueError("perplexity needs `model_id` / `model_name_or_path` (a causal-LM name or folder) or a "
                             "`model` object")
        model = load_causal_lm(name, dtype="float32", trust_remote_code=trust_remote_code)
        model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if tokenizer is None:
        if not name:
            raise ValueError("perplexity needs the model's `tokenizer` (or `model_id` to load it from)")
        tokenizer = load_tokenizer(name)
    return model, tokenizer, device or next(iter(model.parameters())).device


def _windows(tokenizer, predictions, start_id, max_length, stride):
    """Every text -> token ids -> windows (text index, ids, first scored position); and each text's number of
    scored tokens."""
    windows, n_tokens = [], []
    for i, text in enumerate(predictions):
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if start_id is not None:
            ids = [start_id] + ids
        n_tokens.append(max(0, len(ids) - 1))
        begin, scored_to = 0, 1
        while scored_to < len(ids):
            end = min(begin + max_length, len(ids))
            windows.append((i, ids[begin:end], scored_to - begin))
            scored_to = end
            begin = min(begin + stride, scored_to - 1)  # a window's first token is context, never scored
    assert sum(len(w[1]) - w[2] for w in windows) == sum(n_tokens)  # every token scored exactly once
    return windows, n_tokens


def _pad_id(tokenizer):
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _score(model, windows, n_texts, pad_id, batch_size, device, progress, cached=()):
    """Negative log-likelihood (nats) per text: windows batched longest first, right-padded by hand (whatever
    the tokenizer's padding_side), each scoring only its tokens after `first`; each after the `cached` tokens
    (their keys and values computed once)."""
    nll = [0.0] * n_texts
    order = sorted(range(len(windows)), key=lambda k: -len(windows[k][1]))
    batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="perplexity", unit="batch")
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with torch.inference_mode():
            past = model(input_ids=torch.tensor([list(cached)], device=device), use_cache=True).past_key_values \
                if cached else None
            for batch in batches:
                x, mask, labels = _batch([windows[k] for k in batch], pad_id)
                kw = {}
                if past is not None:  # every row continues the cached context
                    kw["past_key_values"] = copy.deepcopy(past)
                    kw["past_key_values"].batch_repeat_interleave(len(batch))
                    mask = torch.cat([torch.ones(len(batch), len(cached), dtype=mask.dtype), mask], dim=1)
                logits = model(input_ids=x.to(device), attention_mask=mask.to(device), **kw).logits
                target = labels[:, 1:].to(logits.device)
                loss = _token_nll(logits, target).sum(dim=1).double().cpu()
                for row, k in enumerate(batch):
                    nll[windows[k][0]] += float(loss[row])
    finally:
        if was_training:
            model.train()
    return nll


def _token_nll(logits, target):
    """[rows, positions - 1]: each position's negative log-likelihood of the next token (0 where the target is
    -100), one row at a time: the log-softmax of a whole batch at once holds two more copies of its logits
    (rows x positions x vocabulary: 8 x 600 x 49,152 floats are 0.9 GB each), and each row's numbers are the same
    either way."""
    nll = torch.empty(target.shape, dtype=torch.float32, device=logits.device)
    for row in range(logits.shape[0]):
        nll[row] = torch.nn.functional.cross_entropy(logits[row, :-1].float(), target[row], ignore_index=-100,
                                                     reduction="none")
    return nll


def _batch(rows, pad_id):
    width = max(len(ids) for _, ids, _ in rows)
    x = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for row, (_, ids, first) in enumerate(rows):
        x[row, :len(ids)] = torch.tensor(ids)
        mask[row, :len(ids)] = 1
        labels[row, first:len(ids)] = x[row, first:len(ids)]
    return x, mask, labels


def _context_size(model):
    cfg = getattr(model, "config", None)
    for name in ("n_positions", "max_position_embeddings", "n_ctx", "max_length"):
        v = getattr(cfg, name, None) if cfg is not None else None
        if isinstance(v, int) and v > 0:
            return v
    raise ValueError("cannot tell the model's context size: pass max_length")


def _start_id(tokenizer, start_token):
    if start_token is not None:
        tid = tokenizer.convert_tokens_to_ids(start_token)
        if tid is None or tid == tokenizer.unk_token_id and start_token != tokenizer.unk_token:
            raise ValueError(f"start_token {start_token!r} is not in the tokenizer's vocabulary")
        return tid
    for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return tid
    raise ValueError("the tokenizer has no bos or eos token to start with: pass start_token, or "
                     "add_start_token=False (the first token of each text is then not scored)")
