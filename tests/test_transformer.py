"""The Transformer chapter on tiny random models: attention maps (causal or not), positional encodings, the masked
next word, tokens, the vanishing gradient (against direct computations), the LSTM's gates, GPT-1's recipe, and
the chapter's two claims on synthetic results on both sides of their thresholds."""

import math
import random

import numpy as np
import pytest
import torch

from hfrepro.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from hfrepro.errors import UserError
from hfrepro.lm.data import train_tokenizer
from hfrepro.reproduce.transformer import ORDERS, pretraining_claim, vanishing_claim
from hfrepro.transformer import attention, gradients, nextword, positions, tokens

LINES = [f"{s} {v} {o}" for s in ("The king", "A queen", "My lord", "Good Romeo") for v in ("speaks to", "loves")
         for o in ("the moon.", "his sword.", "thee, sir.")] * 5


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(LINES, vocab_size=300)


@pytest.fixture(scope="module")
def gpt(tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).eval()


@pytest.fixture(scope="module")
def llama(tok):
    """Stage 2's default GPT: Llama's block (rotary positions, no position table)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                                        tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                                        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).eval()


@pytest.fixture(scope="module")
def bert(tok):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64)).eval()


class _WordPiece:
    """What the encoder functions need of a BERT tokenizer, on top of the BPE: [CLS] ids [SEP]."""

    def __init__(self, tok):
        self.tok, self.sep_token_id = tok, tok.eos_token_id

    def __call__(self, text, return_tensors=None):
        ids = [self.tok.bos_token_id] + self.tok(text, add_special_tokens=False)["input_ids"] + [self.sep_token_id]
        return {"input_ids": torch.tensor([ids])} if return_tensors else {"input_ids": ids}

    def convert_ids_to_tokens(self, ids):
        return self.tok.convert_ids_to_tokens(ids)

    def decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_gpt_attention_is_causal_and_bert_looks_both_ways(kind, gpt, llama, bert, tok):
    a = attention.gpt_attention({"gpt2": gpt, "llama": llama}[kind], tok, "The king loves the moon.")
    maps = np.asarray(a["maps"])
    assert maps.shape[:2] == (2, 2) and maps.shape[2] == maps.shape[3] == len(a["query"])
    np.testing.assert_allclose(maps.sum(-1), 1, atol=1e-5)                   # each row is a distribution
    assert attention.future_mass(a["maps"]) == 0 and np.all(np.triu(maps[0, 0], 1) == 0)
    b = attention.encoder_attention(bert, _WordPiece(tok), "The king loves the moon.")
    assert attention.future_mass(b["maps"]) > 0.2
    assert attention.future_mass([[[[0.5, 0.5], [0.25, 0.75]]]]) == pytest.approx(0.25)   # by hand: (0.5 + 0) / 2


def test_the_bert_stage_model_is_found_and_its_rotary_encoder_looks_both_ways(tok, tmp_path):
    """The transformer stage draws the map of the BERT the bert stage trained (a RoFormer: BERT with rotary
    positions), saved as the bert stage's `bert` run."""
    from transformers import RoFormerConfig, RoFormerForMaskedLM

    from hfrepro.claims import StageContext
    from hfrepro.reproduce.transformer import _bert_stage_model

    ctx = StageContext(dir=tmp_path / "transformer", root=tmp_path, budget="tiny", seed=0, threads=1)
    assert _bert_stage_model(ctx) is None                                     # the bert stage did not run here
    torch.manual_seed(0)
    RoFormerForMaskedLM(RoFormerConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                       embedding_size=32)).save_pretrained(tmp_path / "bert" / "bert")
    folder = _bert_stage_model(ctx)
    assert folder == tmp_path / "bert" / "bert"
    from transformers import AutoModel

    b = attention.encoder_attention(AutoModel.from_pretrained(folder).eval(), _WordPiece(tok), "The king loves.")
    assert len(b["maps"]) == 2 and attention.future_mass(b["maps"]) > 0.2


def test_translator_attention_has_three_kinds(tok):
    from transformers import MarianConfig, MarianMTModel

    torch.manual_seed(0)
    model = MarianMTModel(MarianConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
                                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                                       decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                                       eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.bos_token_id,
                                       forced_eos_token_id=None))
    r = attention.translator_attention(model, tok, "The king loves the moon.", max_new_tokens=6)
    src, tgt = len(r["source"]), len(r["target"])
    assert np.asarray(r["encoder"]["maps"]).shape[2:] == (src, src)
    assert np.asarray(r["cross"]["maps"]).shape[2:] == (tgt, src)
    assert attention.future_mass(r["decoder"]["maps"]) == 0                 # the decoder is causal
    assert attention.drawable(["ab c", "한국"]) == ["ab·c", "#1"]


def test_positional_encodings(gpt, tmp_path):
    pe = positions.sinusoidal(50, 16)
    assert pe.shape == (50, 16)
    np.testing.assert_allclose(pe[0], [0, 1] * 8, atol=1e-12)
    assert pe[7, 0] == pytest.approx(math.sin(7)) and pe[7, 1] == pytest.approx(math.cos(7))
    assert pe[7, 2] == pytest.approx(math.sin(7 / 10000 ** (2 / 16)))
    assert positions.neighbour_similarity(pe, 1) > positions.neighbour_similarity(pe, 20)
    assert positions.learned(gpt).shape == (64, 32)
    positions.plot_positions({"sin": pe, "learned": positions.learned(gpt)}, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_rotary_angles_are_the_sinusoids_at_the_head_size(llama):
    """A rotary model has no table: its angles p * theta_i, theta_i = base^(-2i/d_head), are the sinusoidal table
    at d_head, and their cosines are the ones Llama's rotary embedding applies."""
    assert positions.learned(llama) is None
    assert positions.rope_base(llama.config) == 10000.0
    pe = positions.sinusoidal(64, 16, base=positions.rope_base(llama.config))
    x = torch.zeros(1, 64, 32)
    cos, sin = llama.model.rotary_emb(x, torch.arange(64)[None])
    np.testing.assert_allclose(cos[0, :, :8].numpy(), pe[:, 1::2], atol=1e-5)   # Llama repeats the 8 angles twice
    np.testing.assert_allclose(sin[0, :, :8].numpy(), pe[:, 0::2], atol=1e-5)
    assert positions.sinusoidal(8, 4, base=100.0)[3, 2] == pytest.approx(math.sin(3 / 100 ** (2 / 4)))


def test_the_future_is_masked_for_gpt_and_not_for_bert(gpt, bert, tok):
    g = nextword.causal_future_effect(gpt, tok, "The king loves the moon.", "The king", start_id=tok.bos_token_id)
    assert g["max_abs_diff"] < 1e-4 < g["scale"] and g["prefix_tokens"] < g["sentence_tokens"]
    b = nextword.encoder_future_effect(bert, _WordPiece(tok), "The king loves the moon.", "The king")
    assert b["max_abs_diff"] > 1e-3 and b["max_abs_diff"] > 1000 * g["max_abs_diff"]
    with pytest.raises(ValueError, match="prefix"):
        nextword.causal_future_effect(gpt, tok, "The king loves the moon.", "A queen")
    ranked = nextword.rank_next_words(gpt, tok, "The king", [" loves", " speaks to"], start_id=tok.bos_token_id)
    assert ranked[0]["log2 P"] >= ranked[1]["log2 P"]
    r = next(x for x in ranked if x["candidate"] == "loves")               # a direct computation
    ids = [tok.bos_token_id] + tok("The king", add_special_tokens=False)["input_ids"]
    cont = tok("The king loves", add_special_tokens=False)["input_ids"][len(ids) - 1:]
    with torch.no_grad():
        logp = torch.log_softmax(gpt(input_ids=torch.tensor([ids + cont])).logits[0].double(), -1)
    assert r["log2 P"] == pytest.approx(sum(float(logp[len(ids) - 1 + j, t]) for j, t in enumerate(cont))
                                        / math.log(2))


def test_tokens(tok):
    rows = tokens.pieces("The king loves thee.", tok)
    assert "".join(r["text"] for r in rows) == "The king loves thee."
    assert [r["id"] for r in rows] == tok("The king loves thee.", add_special_tokens=False)["input_ids"]
    per = tokens.per_character("왕 king", tok)                               # 3 bytes, no Korean merges
    assert per[0] == ("왕", 3) and [c for c, _ in per] == list("왕king")
    cmp = tokens.compare_languages({"bpe": tok}, [("The king.", "왕이다."), ("My lord.", "주인님.")])[0]
    assert cmp["Korean / English tokens"] > 1 and cmp["vocabulary"] == len(tok)
    assert tokens.tokens_per_char(tok, ["The king"]) == pytest.approx(len(tok("The king", add_special_tokens=False)
                                                                           ["input_ids"]) / 8)


def _rnn(cell, tok, seed=0):
    from hfrepro.lm.lstm import LSTMLM, LSTMConfig

    torch.manual_seed(seed)
    return LSTMLM(LSTMConfig(vocab_size=len(tok), d_model=16, cell=cell)).eval()


def test_input_gradient_norms_match_autograd_on_the_whole_sequence(tok):
    model = _rnn("rnn_tanh", tok)
    seq = list(range(5, 17))
    norms = gradients.input_gradient_norms(model, [seq], distance=6)
    x = torch.tensor([seq])
    emb = model.double().embed(x[:, :-1]).detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(inputs_embeds=emb).logits[0, -1:], x[0, -1:])
    loss.backward()
    model.float()
    direct = emb.grad[0].norm(dim=-1).flip(0)[:7].numpy()
    np.testing.assert_allclose(norms[0], direct, rtol=1e-10)
    d = gradients.log_decay(norms)
    assert d[0, 0] == 0 and d.shape == (1, 7)
    assert next(model.parameters()).dtype == torch.float32                 # the model is given back in float32
    with pytest.raises(ValueError, match="at least"):
        gradients.input_gradient_norms(model, [seq[:5]], distance=6)


def test_a_tanh_rnn_forgets_faster_than_an_lstm_with_open_forget_gates(tok):
    rnn, lstm = _rnn("rnn_tanh", tok), _rnn("lstm", tok)
    with torch.no_grad():                                                  # forget gates open (bias +5), as training
        lstm.lstm.bias_ih_l0[16:32] = 5.0                                  # learns where memory pays
    seqs = [random.Random(k).sample(range(5, 200), 30) for k in range(4)]
    r, m = (gradients.log_decay(gradients.input_gradient_norms(x, seqs, 25))[:, 25] for x in (rnn, lstm))
    assert (m - r).mean() > ORDERS


def test_lstm_gates_rebuild_the_lstm(tok):
    model = _rnn("lstm", tok)
    ids = list(range(5, 15))
    g = gradients.lstm_gates(model, ids)
    assert {k: np.asarray(v).shape for k, v in g.items()} == {k: (10, 16) for k in ("input", "forget", "output")}
    with torch.no_grad():
        h, (hn, cn) = model.lstm(model.embed(torch.tensor([ids])))
    # the last output rebuilt from the gates: h = o * tanh(c), so |h| <= o everywhere
    assert np.all(np.abs(h[0].numpy()) <= np.asarray(g["output"]) + 1e-6)
    assert np.all((np.asarray(g["forget"]) > 0) & (np.asarray(g["forget"]) < 1))


@pytest.mark.parametrize("gap,expected", [(5.0, REPRODUCED), (-1.0, NOT_REPRODUCED), (2.0, INCONCLUSIVE)])
def test_vanishing_claim_on_both_sides_and_in_between(gap, expected):
    rng = np.random.default_rng(0)
    rnn = rng.normal(-8.0, 1.0, 64)
    lstm = rnn + gap + rng.normal(0, 0.3, 64)
    d = vanishing_claim(rnn, lstm, 32)
    assert d.verdict == expected and d.threshold == ORDERS == 2
    assert "64 held-out sequences" in d.uncertainty


@pytest.mark.parametrize("p_pre,expected", [(0.8, REPRODUCED), (0.3, NOT_REPRODUCED), (0.51, INCONCLUSIVE)])
def test_pretraining_claim_on_both_sides_and_in_between(p_pre, expected):
    rng = np.random.default_rng(1)
    scratch = (rng.random(400) < 0.5).astype(float).tolist()
    pre = (rng.random(400) < p_pre).astype(float).tolist()
    d = pretraining_claim(scratch, pre, 0.3)
    assert d.verdict == expected
    assert d.estimate == pytest.approx(sum(pre) / 400 - sum(scratch) / 400)
    with pytest.raises(UserError, match="different test sets"):
        pretraining_claim(scratch[:10], pre, 0.3)


def _plays(tmp_path):
    """Speeches of two 'plays', told apart by their speakers: (rows, a jsonl dataset file)."""
    import json

    rows = [{"text": f"{s} {v} {o}", "work": "Hamlet" if s in ("The king", "My lord") else "Macbeth"}
            for s in ("The king", "A queen", "My lord", "Good Romeo") for v in ("speaks to", "loves", "fears")
            for o in ("the moon.", "his sword.", "thee, sir.", "the night!", "no man.")] * 3
    data = tmp_path / "plays.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return rows, data


def test_gpt1_recipe_fine_tunes_both_arms_on_the_same_items(gpt, tok, tmp_path):
    import json

    from hfrepro.recipes import gpt1

    gpt.save_pretrained(tmp_path / "clm")
    tok.save_pretrained(tmp_path / "clm")
    rows, data = _plays(tmp_path)
    argv = ["--budget", "tiny", "--model_name_or_path", str(tmp_path / "clm"), "--dataset", str(data),
            "--labels", "Hamlet", "Macbeth", "--train_per_label", "20", "--max_steps", "30",
            "--per_device_train_batch_size", "8", "--task", "play", "--output_dir", str(tmp_path / "gpt1"),
            "--threads", "1", "--disable_tqdm", "true"]
    m = gpt1.cli(argv)
    assert m["train_examples"] == 40 and m["test_examples"] > 5
    for arm in ("pretrained", "scratch"):
        preds = [json.loads(x) for x in (tmp_path / "gpt1" / arm / "predictions.jsonl").read_text().splitlines()]
        assert len(preds) == m["test_examples"] and m[arm]["steps"] == 30
        assert m[arm]["accuracy"] == pytest.approx(sum(p["label"] == p["prediction"] for p in preds) / len(preds))
        assert (tmp_path / "gpt1" / arm / "model.safetensors").is_file()
    assert gpt1.cli(argv) == m                                             # the same command again: nothing to do
    with pytest.raises(UserError, match="not in the"):
        gpt1.cli(argv[:7] + ["Hamlet", "Lear"] + argv[9:-6] + ["--output_dir", str(tmp_path / "x")])
    with pytest.raises(UserError, match="model_name_or_path"):
        gpt1.cli(["--budget", "tiny", "--output_dir", str(tmp_path / "y")])
    with pytest.raises(UserError, match="eval_split"):
        gpt1.cli(argv[:-6] + ["--eval_split", "train", "--output_dir", str(tmp_path / "z")])
    # a saved dataset without that split
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows[:20])}).save_to_disk(tmp_path / "d")
    k = argv.index("--dataset")
    with pytest.raises(UserError, match="no 'validation' split"):
        gpt1.cli(argv[:k + 1] + [str(tmp_path / "d")] + argv[k + 2:-6]
                 + ["--eval_split", "validation", "--output_dir", str(tmp_path / "v")])


def test_gpt1_fine_tunes_stage_2s_default_gpt_and_refuses_what_is_not_a_gpt(llama, bert, tok, tmp_path):
    import json

    from hfrepro.recipes import gpt1

    llama.save_pretrained(tmp_path / "clm")
    tok.save_pretrained(tmp_path / "clm")
    _, data = _plays(tmp_path)
    argv = ["--budget", "tiny", "--model_name_or_path", str(tmp_path / "clm"), "--dataset", str(data),
            "--labels", "Hamlet", "Macbeth", "--train_per_label", "10", "--max_steps", "4",
            "--per_device_train_batch_size", "8", "--task", "play", "--threads", "1", "--disable_tqdm", "true"]
    m = gpt1.cli(argv + ["--output_dir", str(tmp_path / "gpt1")])
    assert m["pretrained"]["steps"] == m["scratch"]["steps"] == 4
    saved = json.loads((tmp_path / "gpt1" / "scratch" / "config.json").read_text())
    assert saved["architectures"] == ["LlamaForSequenceClassification"]
    bert.save_pretrained(tmp_path / "bert")
    argv[argv.index(str(tmp_path / "clm"))] = str(tmp_path / "bert")
    with pytest.raises(UserError, match="not a GPT model folder"):
        gpt1.cli(argv + ["--output_dir", str(tmp_path / "no")])


def test_gpt1_order_task_differs_in_word_order_only():
    """--task order: speeches of min_words or more, cut to max_words; a seeded half keep their order, the rest hold
    the same words in another order; the same seed gives the same items."""
    from datasets import Dataset, DatasetDict

    from hfrepro.recipes.gpt1 import ORDER_LABELS, ScriptArguments, order_task

    texts = [" ".join(f"w{k}_{i}" for i in range(n)) for k, n in enumerate([3, 5, 8, 9, 12] * 40)]
    dd = DatasetDict({"train": Dataset.from_dict({"text": texts, "work": ["x"] * len(texts)})})
    s = ScriptArguments(task="order", min_words=5, max_words=8)
    out = order_task(dd, s, seed=0)["train"]
    assert len(out) == 160                                   # the 40 speeches of 3 words are left out
    originals = {t.split()[0]: t.split()[:8] for t in texts if len(t.split()) >= 5}
    for text, label in zip(out["text"], out["work"]):
        words = text.split()
        first = min(words, key=lambda w: int(w.split("_")[1]))  # the speech's first word, wherever it went
        orig = originals[first]
        assert sorted(words) == sorted(orig) and len(words) == min(8, len(orig))
        assert (words == orig) is (label == ORDER_LABELS[1]), (words, orig, label)
    assert 50 < out["work"].count(ORDER_LABELS[0]) < 110      # about half shuffled
    assert order_task(dd, s, seed=0)["train"]["text"] == out["text"]
    assert order_task(dd, s, seed=1)["train"]["text"] != out["text"]


def test_gpt1_recipe_refuses_a_bad_task(gpt, tok, tmp_path):
    from hfrepro.recipes import gpt1

    gpt.save_pretrained(tmp_path / "clm")
    tok.save_pretrained(tmp_path / "clm")
    base = ["--budget", "tiny", "--model_name_or_path", str(tmp_path / "clm"), "--output_dir", str(tmp_path / "g")]
    with pytest.raises(UserError, match="--task 'genre' is not a task"):
        gpt1.cli(base + ["--task", "genre"])
    with pytest.raises(UserError, match="min_words"):
        gpt1.cli(base + ["--min_words", "30", "--max_words", "24"])
    assert not (tmp_path / "g").exists()                     # refused before anything was written


def test_gpt1_pretrained_arm_has_its_own_learning_rate(gpt, tok, tmp_path):
    """--pretrained_learning_rate reaches the pretrained arm only: at 1e-12 its body stays the GPT's weights."""
    import json

    from safetensors.torch import load_file

    from hfrepro.recipes import gpt1

    gpt.save_pretrained(tmp_path / "clm")
    tok.save_pretrained(tmp_path / "clm")
    rows = [{"text": f"{w} speaks {k}", "work": ("Hamlet", "Macbeth")[k % 2]} for k in range(40)
            for w in ("The king", "A queen")]
    data = tmp_path / "plays.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    gpt1.cli(["--budget", "tiny", "--model_name_or_path", str(tmp_path / "clm"), "--dataset", str(data),
              "--task", "play", "--labels", "Hamlet", "Macbeth", "--train_per_label", "10", "--max_steps", "5",
              "--pretrained_learning_rate", "1e-12", "--output_dir", str(tmp_path / "gpt1"), "--threads", "1",
              "--disable_tqdm", "true"])
    base = load_file(tmp_path / "clm" / "model.safetensors")
    for arm, same in (("pretrained", True), ("scratch", False)):
        tuned = load_file(tmp_path / "gpt1" / arm / "model.safetensors")
        w = "transformer.h.0.attn.c_attn.weight"
        assert torch.allclose(tuned[w], base[w], atol=1e-9) is same, arm   # Adam moves each weight ~lr a step


def test_lstm_recipe_takes_a_cell(tmp_path):
    from hfrepro.lm.lstm import LSTMLM
    from hfrepro.recipes import lstm

    corpus = tmp_path / "plays.txt"
    corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    argv = ["--budget", "tiny", "--dataset", str(corpus), "--vocab_size", "300", "--block_size", "16",
            "--train_max_chars", "0", "--eval_max_chars", "300", "--val_max_chars", "300", "--d_model", "16",
            "--max_steps", "3", "--eval_strategy", "no", "--save_strategy", "no", "--threads", "1",
            "--disable_tqdm", "true"]
    m = lstm.cli(argv + ["--cell", "rnn_tanh", "--output_dir", str(tmp_path / "rnn")])
    assert m["model"] == "rnn_tanh"
    model = LSTMLM.from_pretrained(tmp_path / "rnn")
    assert isinstance(model.lstm, torch.nn.RNN) and model.lstm.nonlinearity == "tanh"
    with pytest.raises(UserError, match="unknown --cell"):
        lstm.cli(argv + ["--cell", "transformer", "--output_dir", str(tmp_path / "bad")])


def test_tokenize_command(tok, tmp_path):
    from tests.conftest import run_cli

    tok.save_pretrained(tmp_path / "tok")
    r = run_cli("tokenize", "--tokenizer", tmp_path / "tok", "--text", "The king 왕")
    assert r.returncode == 0, r.stderr
    assert "| # | id | piece | text |" in r.stdout
    assert "tokens/char" in r.stdout and "왕 3" in r.stdout
    r = run_cli("tokenize", "--tokenizer", tmp_path / "nope", "--text", "x")
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_gpt1_auxiliary_loss_is_task_plus_lambda_times_the_lm_loss(kind, gpt, llama, tok, tmp_path):
    """GPT-1's eq. 5 in AuxLMTrainer: the loss is the classifier's plus lambda x the LM head's next-token loss,
    for GPT-2's block and Llama's (stage 2's default GPT)."""
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from hfrepro.recipes.gpt1 import AuxLMTrainer

    gpt = {"gpt2": gpt, "llama": llama}[kind]
    gpt.save_pretrained(tmp_path / "clm")
    clf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "clm", num_labels=2,
                                                             pad_token_id=tok.pad_token_id).train()
    assert clf.config.model_type == kind
    for m in clf.modules():  # training mode (the auxiliary loss is a training loss), without dropout's noise
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    rows = [tok("the king speaks to the night")["input_ids"], tok("a queen")["input_ids"]]
    n = max(map(len, rows))
    ids = torch.tensor([r + [tok.pad_token_id] * (n - len(r)) for r in rows])
    assert (ids == tok.pad_token_id).any()     # the second row is padded: the LM loss must skip its padding
    mask = (ids != tok.pad_token_id).long()
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1])}
    args = TrainingArguments(output_dir=str(tmp_path / "t"), report_to="none", use_cpu=True)
    task = AuxLMTrainer(model=clf, args=args, lm_weight=0.0).compute_loss(clf, batch)
    both = AuxLMTrainer(model=clf, args=args, lm_weight=0.5).compute_loss(clf, batch)
    lm = gpt(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss   # eval mode
    assert both.item() == pytest.approx(task.item() + 0.5 * lm.item(), rel=1e-5)
    assert both.item() > task.item()
