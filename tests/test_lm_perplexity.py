"""The perplexity metric module (hfrepro/metrics/perplexity), loaded offline by path, against a direct
computation on a tiny random GPT-2."""

import math

import pytest
import torch

from hfrepro.paths import PACKAGE_DIR

METRIC = str(PACKAGE_DIR / "metrics" / "perplexity")


@pytest.fixture(scope="module")
def tiny():
    from transformers import GPT2Config, GPT2LMHeadModel

    from hfrepro.data import read_lines
    from hfrepro.lm.data import train_tokenizer

    lines = read_lines(PACKAGE_DIR.parent / "tests" / "fixtures" / "tiny.txt")
    tok = train_tokenizer(lines, vocab_size=300)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    return model.eval(), tok, [ln + "\n" for ln in lines]


@pytest.fixture(scope="module")
def metric():
    import evaluate
    return evaluate.load(METRIC)


def _direct_nll(model, ids, contexts):
    """-sum log p(ids[t] | ids[contexts[t]:t]) for t = 1.., one forward per token: the definition."""
    total = 0.0
    with torch.no_grad():
        for t in range(1, len(ids)):
            x = torch.tensor([ids[contexts[t]:t]])
            logp = torch.log_softmax(model(input_ids=x).logits[0, -1].double(), -1)
            total -= float(logp[ids[t]])
    return total


def test_is_an_evaluate_metric_loaded_by_path(metric):
    import evaluate
    assert isinstance(metric, evaluate.Metric)
    assert "bits per character" in metric.description or "Bits" in metric.description or metric.description


def test_short_texts_match_the_direct_computation(metric, tiny):
    model, tok, texts = tiny
    r = metric.compute(predictions=texts, model=model, tokenizer=tok, max_length=64, batch_size=4)
    total, n = 0.0, 0
    for text, ppl in zip(texts, r["perplexities"]):
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
        nll = _direct_nll(model, ids, [0] * len(ids))
        assert ppl == pytest.approx(math.exp(nll / (len(ids) - 1)), rel=1e-6)
        total, n = total + nll, n + len(ids) - 1
    assert r["num_tokens"] == n
    assert r["nll"] == pytest.approx(total, rel=1e-6)
    assert r["perplexity"] == pytest.approx(math.exp(total / n), rel=1e-6)
    assert r["num_chars"] == sum(len(t) for t in texts)
    assert r["bits_per_character"] == pytest.approx(total / math.log(2) / r["num_chars"], rel=1e-6)


@pytest.mark.parametrize("max_length,stride", [(8, 3), (8, 8), (5, 1), (16, 10)])
def test_sliding_window_matches_per_token_contexts(metric, tiny, max_length, stride):
    model, tok, texts = tiny
    text = "".join(texts[:4])  # one long text: many windows
    ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3 * max_length
    # the rule: windows start at 0, stride, 2*stride...; a token is scored by the first window that reaches it
    contexts, begin, scored_to = [0] * len(ids), 0, 1
    while scored_to < len(ids):
        end = min(begin + max_length, len(ids))
        for t in range(scored_to, end):
            contexts[t] = begin
        scored_to = end
        begin = min(begin + stride, scored_to - 1)
    assert all(t - contexts[t] >= min(t, max(1, max_length - stride)) for t in range(1, len(ids)))
    r = metric.compute(predictions=[text], model=model, tokenizer=tok, max_length=max_length, stride=stride,
                       batch_size=3)
    assert r["nll"] == pytest.approx(_direct_nll(model, ids, contexts), rel=1e-6)
    assert r["num_tokens"] == len(ids) - 1


def test_batching_and_padding_do_not_change_numbers(metric, tiny):
    model, tok, texts = tiny
    a = metric.compute(predictions=texts, model=model, tokenizer=tok, max_length=8, stride=4, batch_size=1)
    b = metric.compute(predictions=texts, model=model, tokenizer=tok, max_length=8, stride=4, batch_size=7)
    assert a["nll"] == pytest.approx(b["nll"], rel=1e-6)
    assert a["perplexities"] == pytest.approx(b["perplexities"], rel=1e-6)


def test_loads_a_causal_lm_folder(metric, tiny, tmp_path):
    model, tok, texts = tiny
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    a = metric.compute(predictions=texts[:3], model_id=str(tmp_path), max_length=32)
    b = metric.compute(predictions=texts[:3], model=model, tokenizer=tok, max_length=32)
    assert a["nll"] == pytest.approx(b["nll"], rel=1e-6)


def test_takes_names_as_the_commands_do(metric, tiny, tmp_path):
    """`model_name_or_path` (TRL's name), or `model` given as a name; an LSTM run folder runs its own code."""
    from hfrepro.lm.lstm import LSTMLM, LSTMConfig

    model, tok, texts = tiny
    model.save_pretrained(tmp_path / "gpt")
    tok.save_pretrained(tmp_path / "gpt")
    b = metric.compute(predictions=texts[:3], model=model, tokenizer=tok, max_length=32)
    for kw in ({"model_name_or_path": str(tmp_path / "gpt")}, {"model": str(tmp_path / "gpt")}):
        assert metric.compute(predictions=texts[:3], max_length=32, **kw)["nll"] == pytest.approx(b["nll"], rel=1e-6)
    torch.manual_seed(0)
    lstm = LSTMLM(LSTMConfig(vocab_size=len(tok), d_model=16, n_positions=32, bos_token_id=tok.bos_token_id))
    lstm.save_pretrained(tmp_path / "lstm")
    tok.save_pretrained(tmp_path / "lstm")
    assert (tmp_path / "lstm" / "lstm.py").is_file()                 # the folder carries the model's code
    a = metric.compute(predictions=texts[:3], model_id=str(tmp_path / "lstm"), trust_remote_code=True)
    assert a["max_length"] == 32
    assert a["nll"] == pytest.approx(metric.compute(predictions=texts[:3], model=lstm, tokenizer=tok)["nll"], rel=1e-6)


def test_without_start_token_the_first_token_is_context(metric, tiny):
    model, tok, texts = tiny
    r = metric.compute(predictions=texts[:2], model=model, tokenizer=tok, add_start_token=False, max_length=64)
    n = sum(len(tok(t, add_special_tokens=False)["input_ids"]) - 1 for t in texts[:2])
    assert r["num_tokens"] == n
    assert r["bits_per_character"] is None


def test_clear_errors(metric, tiny):
    model, tok, texts = tiny
    with pytest.raises(ValueError, match="model_id"):
        metric.compute(predictions=texts[:1])
    with pytest.raises(ValueError, match="tokenizer"):
        metric.compute(predictions=texts[:1], model=model)
    with pytest.raises(ValueError, match="stride"):
        metric.compute(predictions=texts[:1], model=model, tokenizer=tok, max_length=8, stride=9)
    with pytest.raises(ValueError, match="not in the tokenizer"):
        metric.compute(predictions=texts[:1], model=model, tokenizer=tok, start_token="<nope>")


def test_per_text_numbers_add_up(metric, tiny):
    model, tok, texts = tiny
    r = metric.compute(predictions=texts, model=model, tokenizer=tok, max_length=16, stride=8, batch_size=3)
    assert len(r["nlls"]) == len(r["token_counts"]) == len(texts)
    assert sum(r["nlls"]) == pytest.approx(r["nll"], rel=1e-9)
    assert sum(r["token_counts"]) == r["num_tokens"]
    for nll, n, ppl in zip(r["nlls"], r["token_counts"], r["perplexities"]):
        assert ppl == pytest.approx(math.exp(nll / n), rel=1e-9)


def _tiny_llama(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=128, bos_token_id=tok.bos_token_id)).eval()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("max_length,stride", [(96, 32), (30, 3)])
def test_a_context_is_a_prompt_that_is_not_scored(metric, tiny, arch, max_length, stride):
    """With `context`, each text is scored after [start] + context (computed once, a cache), exactly as if the
    context were part of every window; only the text's tokens count."""
    model, tok, texts = tiny
    model = model if arch == "gpt2" else _tiny_llama(tok)
    context = texts[5]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    assert 3 < len(ctx) < max_length - stride
    r = metric.compute(predictions=texts[:4], model=model, tokenizer=tok, context=context, max_length=max_length,
                       stride=stride, batch_size=3)
    cached, inner = 1 + len(ctx) - 1, max_length - len(ctx)     # [start] + ctx[:-1] cached; windows of `inner`
    for text, nll, n in zip(texts[:4], r["nlls"], r["token_counts"]):
        ids = [tok.bos_token_id] + ctx + tok(text, add_special_tokens=False)["input_ids"]
        contexts, begin, scored_to = [0] * len(ids), cached, cached + 1   # windows slide after the cache
        while scored_to < len(ids):
            end = min(begin + inner, len(ids))
            for t in range(scored_to, end):
                contexts[t] = begin
            scored_to = end
            begin = min(begin + stride, scored_to - 1)
        direct = 0.0
        with torch.no_grad():
            for t in range(cached + 1, len(ids)):
                x = torch.tensor([ids[:cached] + ids[contexts[t]:t]])   # the cache, then the window's tokens
                logp = torch.log_softmax(model(input_ids=x).logits[0, -1].double(), -1)
                direct -= float(logp[ids[t]])
        assert n == len(ids) - cached - 1
        assert nll == pytest.approx(direct, rel=1e-5)
    plain = metric.compute(predictions=texts[:4], model=model, tokenizer=tok, max_length=max_length, stride=stride)
    assert plain["num_tokens"] == r["num_tokens"]                 # the same tokens are scored, with or without it


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_loss_row_by_row_equals_the_loss_of_the_whole_batch_to_the_bit(dtype):
    """`_token_nll` takes the log-softmax one row at a time (a batch's at once holds two more copies of its
    logits: 0.9 GB each for SmolLM2 on 8 rows of 600 tokens); every number must be the one-pass one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hfrepro_ppl", f"{METRIC}/perplexity.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 9, 301, generator=g) * 4).to(dtype)
    target = torch.randint(0, 301, (3, 8), generator=g)
    target[1, 5:] = -100                       # a shorter row, right-padded
    target[2, 0] = -100                        # a position that is context, not scored
    one_pass = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, 301), target.reshape(-1),
                                                 ignore_index=-100, reduction="none").view(target.shape)
    rows = mod._token_nll(logits, target)
    assert rows.dtype == torch.float32 and torch.equal(rows, one_pass)
    assert torch.equal(rows.sum(dim=1), one_pass.sum(dim=1)) and float(rows[1, 5:].abs().sum()) == 0.0
