"""BERT's data and evaluation pieces on tiny inputs: sentences, next-sentence pairs, masked windows, the two
prediction paths (both sides / left side) on the same positions, and the sparse masked-LM head."""

import random
from types import SimpleNamespace

import pytest
import torch

from hfrepro.bert import data as bd
from hfrepro.bert import evaluate as ev


def test_sentences_concatenate_to_the_text():
    t = "Nay, a mother. Why not a mother? When I said a mother, Methought you saw a serpent! Well..."
    parts = bd.sentences(t)
    assert "".join(parts) == t and parts[0] == "Nay, a mother." and parts[1] == " Why not a mother?"
    assert bd.sentences("no end") == ["no end"]


def _docs(n_docs=4, n_sent=30, seed=0):
    """Documents of sentences whose token ids say where they come from: doc d, sentence s -> ids 1000*d + s*10+k."""
    rng = random.Random(seed)
    return [[[1000 * (d + 1) + 10 * s + k for k in range(rng.randint(2, 6))] for s in range(n_sent)]
            for d in range(n_docs)]


def test_sentence_pairs_follow_bert():
    docs = _docs()
    out = bd.sentence_pairs(docs, max_length=24, cls_id=1, sep_id=2, seed=3)
    assert out == bd.sentence_pairs(docs, max_length=24, cls_id=1, sep_id=2, seed=3)  # the seed fixes them
    labels = out["next_sentence_label"]
    assert 0.3 < sum(labels) / len(labels) < 0.7                                    # about half NotNext
    for ids, tt, label in zip(out["input_ids"], out["token_type_ids"], labels):
        assert len(ids) <= 24 and len(ids) == len(tt) and ids[0] == 1 and ids[-1] == 2
        sep = ids.index(2)
        a, b = ids[1:sep], ids[sep + 1:-1]
        assert tt == [0] * (sep + 1) + [1] * (len(b) + 1) and a and b
        same_doc = a[-1] // 1000 == b[0] // 1000
        if label == 0:   # IsNext: B continues A in the same document (after any trimming of the ends)
            assert same_doc and b[0] > a[-1]
        else:            # NotNext: B comes from another document
            assert not same_doc


def test_blocks_for_both_kinds_of_model():
    tok = SimpleNamespace(cls_token_id=None, sep_token_id=None, bos_token_id=1, eos_token_id=2)
    docs = _docs(1, 10)
    flat = bd.stream(docs)
    m = list(bd.block_dataset(tok, docs, 8)["input_ids"])
    c = list(bd.block_dataset(tok, docs, 8, causal=True)["input_ids"])
    assert m[0] == [1, *flat[:6], 2] and c[0] == [1, *flat[:7]] and all(len(r) == 8 for r in m + c)


def test_masked_windows_are_seeded_and_skip_specials():
    tok = SimpleNamespace(cls_token_id=1, sep_token_id=2)
    flat = list(range(10, 410))
    x, chosen = ev.masked_windows(tok, flat, 12, n_windows=20, seed=5)
    x2, chosen2 = ev.masked_windows(tok, flat, 12, n_windows=20, seed=5)
    assert torch.equal(x, x2) and torch.equal(chosen, chosen2)
    assert x.shape == (20, 12) and (x[:, 0] == 1).all() and (x[:, -1] == 2).all()
    assert not chosen[:, 0].any() and not chosen[:, -1].any() and chosen.any(1).all()
    assert not torch.equal(chosen, ev.masked_windows(tok, flat, 12, n_windows=20, seed=6)[1])


class _Counting(torch.nn.Module):
    """On a counting sequence, a 'left-to-right' model that predicts (current token + 1) and a 'BERT' that fills a
    mask with (left neighbour + 1): both are right unless their evidence is hidden."""

    def __init__(self, causal, vocab=500, mask_id=3):
        super().__init__()
        self.w, self.causal, self.vocab, self.mask_id = torch.nn.Parameter(torch.zeros(1)), causal, vocab, mask_id

    def forward(self, input_ids, **kw):
        if self.causal:
            guess = input_ids + 1
        else:
            left = torch.cat([input_ids[:, :1], input_ids[:, :-1]], 1)
            guess = torch.where(left == self.mask_id, torch.zeros_like(left), left + 1)
        logits = 50.0 * torch.nn.functional.one_hot(guess.clamp(0, self.vocab - 1), self.vocab).float()  # sure
        return SimpleNamespace(logits=logits)


def test_both_prediction_paths_answer_the_same_positions():
    tok = SimpleNamespace(cls_token_id=1, sep_token_id=2)
    x, chosen = ev.masked_windows(tok, list(range(10, 210)), 22, None, seed=1, mask_probability=0.2)
    l2r_pred, l2r_logp = ev.left_to_right_predictions(_Counting(True), x, chosen)
    bert_pred, _ = ev.masked_predictions(_Counting(False), x, chosen, mask_id=3)
    target = x[chosen]
    first = chosen.clone()
    first[:, 2:] = False                      # position 1 follows [CLS]: the counting rule does not hold there
    ok = ~first[chosen]
    assert (l2r_pred[ok] == target[ok]).all() and (l2r_logp[ok] > -1e-6).all()
    left_masked = torch.zeros_like(chosen)
    left_masked[:, 1:] = chosen[:, :-1]
    bert_ok = bert_pred == target
    assert bert_ok[ok & ~left_masked[chosen]].all() and not bert_ok[left_masked[chosen]].any()
    items = ev.position_items(x, chosen, margin=5)
    assert len(items["target"]) == len(target) and items["middle"].sum() < len(target)
    pos = items["position"][items["middle"]]
    assert (pos >= 6).all() and (pos <= 20 - 5).all()


def test_sparse_head_gives_bertforpretrainings_loss(tmp_path):
    from transformers import BertConfig, BertForMaskedLM, BertForPreTraining

    from hfrepro.bert.model import SparseBertForPreTraining, load_pretraining

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=16, type_vocab_size=2)
    sparse = SparseBertForPreTraining(cfg).eval()
    full = BertForPreTraining(cfg).eval()
    full.load_state_dict(sparse.state_dict())
    ids, labels, nsp = _masked_batch()
    a = sparse(input_ids=ids, labels=labels, next_sentence_label=nsp)
    b = full(input_ids=ids, labels=labels, next_sentence_label=nsp)
    assert a.loss.item() == pytest.approx(b.loss.item(), rel=1e-5) and a.prediction_logits.shape == (4, 50)
    assert torch.allclose(sparse(input_ids=ids).prediction_logits, b.prediction_logits, atol=1e-6)
    sparse.save_pretrained(tmp_path)
    assert '"BertForPreTraining"' in (tmp_path / "config.json").read_text()
    assert isinstance(BertForMaskedLM.from_pretrained(tmp_path), BertForMaskedLM)
    again = load_pretraining(tmp_path).eval()                  # the stage's loader: every position scored
    assert torch.allclose(again(input_ids=ids).prediction_logits, b.prediction_logits, atol=1e-6)


def test_rotary_pretraining_is_roformers_masked_lm_plus_bert_nsp(tmp_path):
    """The rotary variant: the masked-LM loss of RoFormerForMaskedLM (computed at the masked positions only) plus
    BERT's NSP cross-entropy; saved as a RoFormerForMaskedLM that AutoModelForMaskedLM loads, NSP head included."""
    from torch.nn import functional as F
    from transformers import AutoModelForMaskedLM, RoFormerForMaskedLM

    from hfrepro.bert.model import SparseRoFormerForPreTraining, bert_config, left_to_right_model, load_pretraining

    torch.manual_seed(0)
    cfg = bert_config(_Tok(50), 16, 1, 2, 16, 0.0, positions="rotary")
    twin = left_to_right_model(bert_config(_Tok(50), 16, 1, 2, 16, 0.0, True, "rotary"))
    assert cfg.model_type == "roformer" and type(twin).__name__ == "SparseRoFormerForCausalLM"
    sparse = SparseRoFormerForPreTraining(cfg).eval()
    mlm = RoFormerForMaskedLM(cfg).eval()
    missing, _ = mlm.load_state_dict(sparse.state_dict(), strict=False)
    assert not missing
    ids, labels, nsp = _masked_batch()
    a = sparse(input_ids=ids, labels=labels, next_sentence_label=nsp)
    full = mlm(input_ids=ids, labels=labels)
    expected = full.loss + F.cross_entropy(a.seq_relationship_logits, nsp)
    assert a.loss.item() == pytest.approx(expected.item(), rel=1e-5) and a.prediction_logits.shape == (4, 50)
    assert torch.allclose(sparse(input_ids=ids).prediction_logits, full.logits, atol=1e-6)
    sparse.save_pretrained(tmp_path)
    assert '"RoFormerForMaskedLM"' in (tmp_path / "config.json").read_text()
    assert isinstance(AutoModelForMaskedLM.from_pretrained(tmp_path), RoFormerForMaskedLM)
    again = load_pretraining(tmp_path).eval()
    assert torch.allclose(again(input_ids=ids).seq_relationship_logits, sparse(input_ids=ids).seq_relationship_logits)


@pytest.mark.parametrize("positions", ["rotary", "absolute"])
def test_sparse_twin_with_every_target_is_the_plain_causal_lm(tmp_path, positions):
    """The twin's loss with every next-token target kept equals the plain causal LM's; with a sample of them it is
    the cross-entropy at those positions only; saved as the plain class that AutoModelForCausalLM loads."""
    from torch.nn import functional as F
    from transformers import AutoModelForCausalLM

    from hfrepro.bert.model import LEFT_TO_RIGHT, bert_config, left_to_right_model

    torch.manual_seed(0)
    cfg = bert_config(_Tok(50), 16, 1, 2, 16, 0.0, True, positions)
    twin = left_to_right_model(cfg).eval()
    parent = next(c for c in LEFT_TO_RIGHT[cfg.model_type].__mro__ if c.__module__.startswith("transformers."))
    plain = parent(cfg).eval()                                       # the transformers class it extends
    plain.load_state_dict(twin.state_dict())
    ids = torch.randint(5, 50, (3, 12))
    a, b = twin(input_ids=ids, labels=ids), plain(input_ids=ids, labels=ids)
    assert a.loss.item() == pytest.approx(b.loss.item(), rel=1e-5) and a.logits.shape == (3 * 11, 50)
    labels = torch.full_like(ids, -100)
    labels[:, 5] = ids[:, 5]
    logits = plain(input_ids=ids).logits
    assert twin(input_ids=ids, labels=labels).loss.item() == pytest.approx(
        F.cross_entropy(logits[:, 4], ids[:, 5]).item(), rel=1e-5)
    assert torch.allclose(twin(input_ids=ids).logits, logits, atol=1e-6)   # inference: every position, as the parent
    twin.save_pretrained(tmp_path)
    assert isinstance(AutoModelForCausalLM.from_pretrained(tmp_path), type(plain))


def test_next_token_sample_keeps_a_share_of_the_targets_and_never_padding():
    from hfrepro.bert.mlm import NextTokenSample
    from hfrepro.lm.data import train_tokenizer

    tok = train_tokenizer(["the cat sat on the mat and the dog sat on the log\n"] * 20, 300)
    rows = [{"input_ids": list(range(5, 45))}, {"input_ids": list(range(5, 25))}]
    torch.manual_seed(0)
    every = NextTokenSample(tok, 1.0)(rows)
    assert (every["labels"][0] == every["input_ids"][0]).all() and (every["labels"][1, 20:] == -100).all()
    torch.manual_seed(0)
    kept = sum(int((NextTokenSample(tok, 0.25)(rows)["labels"] != -100).sum()) for _ in range(50))
    assert 0.2 < kept / (50 * 60) < 0.3                      # 60 real tokens per batch, a quarter kept on average
    sample = NextTokenSample(tok, 0.25)(rows)
    assert (sample["labels"][1, 20:] == -100).all()
    assert ((sample["labels"] == -100) | (sample["labels"] == sample["input_ids"])).all()


def _masked_batch():
    """3 sequences of 12 tokens, 4 positions to predict, and next-sentence labels."""
    ids = torch.randint(5, 50, (3, 12))
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    labels[1, 7] = ids[1, 7]
    return ids, labels, torch.tensor([0, 1, 0])


class _Tok:
    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n
