"""n-gram LMs: checked against nltk.lm (the reference), normalisation, and the character accounting."""

import math
import random

import numpy as np
import pytest

from hfrepro.errors import UserError
from hfrepro.lm.ngram import BOS, EOS, UNK, AddKLM, KneserNeyLM, NgramLM, SpellingModel, Vocabulary, score_documents
from hfrepro.lm.text import pretokenize

CORPUS = """The fat cat sat on the mat .
The dog sat on the log .
A king and a queen ruled the land .
The man walked to the market with the woman .
The cat saw the dog and the dog saw the cat .
A queen sat on the throne and the king sat on the mat .
The woman walked the dog to the land of the king .
the cat sat . the dog sat . the king sat .""".splitlines()


def _sents():
    return [s.split() for s in CORPUS]


def test_pretokenize_is_reversible():
    rng = random.Random(0)
    alphabet = "ab Z9_,.;'’é\t  -—\"?ñ漢"
    for _ in range(300):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert "".join(pretokenize(s)) == s
    assert pretokenize("I heard not, o'er it.") == ["I", " heard", " not", ",", " o", "'", "er", " it", "."]


def _nltk_kn(sents, order, discount):
    from nltk.lm import KneserNeyInterpolated
    from nltk.util import everygrams

    padded = [[BOS] * (order - 1) + s + [EOS] for s in sents]
    lm = KneserNeyInterpolated(order, discount=discount)
    lm.fit([everygrams(p, max_len=order) for p in padded], [w for p in padded for w in p])
    return lm


@pytest.mark.parametrize("order", [2, 3])
def test_kneser_ney_matches_nltk(order):
    sents = _sents()
    vocab = Vocabulary.build(sents, min_count=1)
    ours = KneserNeyLM(order=order, discount=0.1).fit(vocab, sents)
    ref = _nltk_kn(sents, order, 0.1)
    words = [w for w in vocab.tokens if w not in (BOS, UNK)]
    contexts = {tuple(s[i:i + order - 1]) for s in sents for i in range(len(s) - order + 2)}
    contexts |= {("zebra",) * (order - 1), ("cat",) * (order - 1)}          # unseen contexts back off
    contexts = [c for c in contexts if len(c) == order - 1 and c[-1] != BOS]
    assert len(contexts) > 20
    checked = 0
    for ctx in sorted(contexts):
        ids = [vocab.index.get(w, vocab.index[UNK]) for w in ctx]
        grams = np.array([[*ids, vocab.index[w]] for w in words])
        mine = ours.prob(grams)
        theirs = np.array([ref.score(w, list(ctx)) for w in words])
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-15)
        checked += len(words)
    assert checked > 300


def test_kneser_ney_sentence_start_is_normalised_where_nltk_is_not():
    """After <s> <s> nltk's middle-order gamma counts the pad bigram (<s> <s>), which no trigram continues;
    we count continuation types, so the distribution sums to 1. This is the one place the two differ."""
    sents = _sents()
    vocab = Vocabulary.build(sents, min_count=1)
    ours = KneserNeyLM(order=3, discount=0.1).fit(vocab, sents)
    assert ours.distribution([0, 0]).sum() == pytest.approx(1.0, abs=1e-12)
    ref = _nltk_kn(sents, 3, 0.1)
    nltk_sum = sum(ref.score(w, [BOS, BOS]) for w in vocab.tokens if w != UNK)
    assert abs(nltk_sum - 1.0) > 1e-6


@pytest.mark.parametrize("order", [2, 3, 4])
def test_kneser_ney_distributions_sum_to_one(order):
    sents = _sents()
    vocab = Vocabulary.build(sents, min_count=2)  # rare words become <unk>
    lm = KneserNeyLM(order=order).fit(vocab, sents)  # Ney's discounts
    assert all(0 < d < 1 for d in lm.discounts)
    V = len(vocab)
    for ctx in ([0] * (order - 1), [vocab.index["the"]] * (order - 1), [V - 1] * (order - 1),
                [vocab.index[UNK]] * (order - 1), [vocab.index["sat"], vocab.index["on"], 5][: order - 1]):
        p = lm.distribution(ctx)
        assert p.min() > 0
        assert p.sum() == pytest.approx(1.0, abs=1e-12)


def test_kneser_ney_prefers_seen_continuations():
    sents = _sents()
    vocab = Vocabulary.build(sents, min_count=1)
    lm = KneserNeyLM(order=3).fit(vocab, sents)
    the, sat, on = (vocab.index[w] for w in ("the", "sat", "on"))
    p = lm.distribution([sat, on])
    assert p.argmax() == the


def test_add_k_bigram_matches_nltk_lidstone():
    from nltk.lm import Lidstone
    from nltk.util import everygrams

    sents = _sents()
    vocab = Vocabulary.build(sents, min_count=1)
    ours = AddKLM(order=2, k=0.1).fit(vocab, sents)
    padded = [[BOS] + s + [EOS] for s in sents]
    ref = Lidstone(0.1, 2)
    ref.fit([everygrams(p, max_len=2) for p in padded], [w for p in padded for w in p])
    assert len(ref.vocab) == len(vocab)  # nltk's <UNK> and our <unk>: both in, both unseen
    for ctx in ("the", "cat", "queen", BOS):
        grams = np.array([[vocab.index[ctx], vocab.index[w]] for w in vocab.tokens if w != UNK])
        theirs = [ref.score(w, [ctx]) for w in vocab.tokens if w != UNK]
        np.testing.assert_allclose(ours.prob(grams), theirs, rtol=1e-12)
        assert ours.distribution([vocab.index[ctx]]).sum() == pytest.approx(1.0)


def test_unigram_add_one_closed_form():
    sents = _sents()
    vocab = Vocabulary.build(sents, min_count=1)
    lm = AddKLM(order=1, k=1.0).fit(vocab, sents)
    n = sum(len(s) + 1 for s in sents)  # every word and one </s> per sentence are predicted
    c_the = sum(s.count("the") for s in sents)
    p = lm.prob(np.array([[vocab.index["the"]]]))[0]
    assert p == pytest.approx((c_the + 1) / (n + len(vocab)))
    assert lm.distribution([]).sum() == pytest.approx(1.0)


def test_save_and_load_give_the_same_probabilities(tmp_path):
    sents = _sents()
    vocab = Vocabulary.build(sents, min_count=2)
    speller = SpellingModel.fit(vocab, sents)
    for lm in (KneserNeyLM(3), AddKLM(2, 0.05), AddKLM(1)):
        lm.fit(vocab, sents)
        lm.save_pretrained(tmp_path / lm.kind / str(lm.order), speller)
        back, sp = NgramLM.from_pretrained(tmp_path / lm.kind / str(lm.order))
        grams = np.random.default_rng(0).integers(0, len(vocab), size=(50, lm.order))
        np.testing.assert_array_equal(back.prob(grams), lm.prob(grams))
        assert sp.bits("zebra") == speller.bits("zebra")
    with pytest.raises(UserError, match="no n-gram model"):
        NgramLM.from_pretrained(tmp_path / "nothing")


def test_spelling_model_is_a_distribution_over_strings():
    sp = SpellingModel({"a": 3, "b": 1}, end_count=2)
    total = sp._total()
    p_end = (2 + 1) / total
    p_chars = (3 + 1 + 1 + 1) / total
    p_other = 1 / total
    assert p_end + p_chars + p_other == pytest.approx(1.0)
    assert sp.bits("") == pytest.approx(-math.log2(p_end))
    assert sp.bits("ab") == pytest.approx(-math.log2(4 / total) - math.log2(2 / total) - math.log2(p_end))
    assert sp.bits("ä") > 20  # an unseen character costs the 'other' class + a uniform code point


def test_score_documents_charges_every_character():
    train = [pretokenize(line) for line in ("the cat sat.", "the dog sat.", "the cat ran.")]
    vocab = Vocabulary.build(train, min_count=2)         # 'dog' and ' ran' become <unk>
    speller = SpellingModel.fit(vocab, train)
    lm = AddKLM(order=1, k=1.0).fit(vocab, train)
    docs = ["the cat flew.\n", "the sat\n"]
    r = score_documents(lm, speller, docs)
    assert r["chars"] == len(docs[0]) + len(docs[1])
    toks = [pretokenize(d.rstrip("\n")) for d in docs]
    assert r["tokens"] == sum(len(t) + 1 for t in toks)
    expected = 0.0
    for t in [w for ts in toks for w in (*ts, EOS)]:
        wid = vocab.index.get(t, vocab.index[UNK])
        expected -= math.log2(lm.prob(np.array([[wid]]))[0])
        if t not in vocab:
            expected += speller.bits(t)
    assert r["oov_tokens"] == 1  # ' flew'
    assert r["bits"] == pytest.approx(expected)
    assert r["bits_per_character"] == pytest.approx(expected / r["chars"])
    # document by document: each scored alone gives the same bits (a document starts from <s>)
    assert r["document_bits"] == pytest.approx([score_documents(lm, speller, [d])["bits"] for d in docs])
    kn = KneserNeyLM(order=3).fit(vocab, train)
    r3 = score_documents(kn, speller, docs)
    assert r3["document_bits"] == pytest.approx([score_documents(kn, speller, [d])["bits"] for d in docs])
    assert sum(r3["document_bits"]) == pytest.approx(r3["bits"])
    with pytest.raises(UserError, match="one line"):
        score_documents(lm, speller, ["two\nlines\n"])


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="order >= 2"):
        KneserNeyLM(order=1)
    with pytest.raises(UserError, match="k > 0"):
        AddKLM(order=2, k=0)
    big = Vocabulary([BOS, EOS, UNK] + [f"w{i}" for i in range(100_000)])
    with pytest.raises(UserError, match="64-bit"):
        KneserNeyLM(order=4).fit(big, [["w1", "w2"]])


def test_choose_k_takes_the_best_on_validation():
    from hfrepro.lm.ngram import choose_k

    train = [pretokenize(line) for line in ("the cat sat.", "the dog sat.", "the cat ran.") * 5]
    vocab = Vocabulary.build(train, min_count=1)
    speller = SpellingModel.fit(vocab, train)
    lm = AddKLM(order=2).fit(vocab, train)
    val = ["the cat sat.\n", "the dog ran.\n"]
    scores = choose_k(lm, speller, val, [1.0, 0.1, 0.01])
    assert lm.k == min(scores, key=scores.get) and len(scores) == 3
    assert scores[lm.k] == score_documents(lm, speller, val)["bits_per_character"]
    assert choose_k(lm, speller, [], [0.5]) == {} and lm.k == 0.5     # one k: nothing to choose
    with pytest.raises(UserError, match="validation"):
        choose_k(lm, speller, [], [1.0, 0.1])
