"""Contextual vs static vectors on tiny inputs: the occurrence's token is found (also in a sentence longer than the
encoder's positions), the triples pair each item with its own sense and the other, and a static model scores 0."""

import pytest
import torch

from hfrepro.bert import senses as S


def _occ():
    texts = [(0, "She gave me a red rose today."), (0, "A rose by any other name."), (1, "Then he rose and left."),
             (1, "At dawn they rose early.")]
    return [S.Occurrence("rose", k, t, t.index("rose")) for k, t in texts]


def test_triples_and_static_separation():
    occ = _occ()
    trip = S.triples(occ, seed=0)
    assert len(trip) == 4 and trip == S.triples(occ, seed=0)
    for i, same, other in trip:
        assert same != i and occ[same].sense == occ[i].sense and occ[other].sense != occ[i].sense
    assert S.separation(None, trip) == [0.0] * 4                       # one vector per word: no separation
    v = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])  # senses apart
    assert all(x > 0.7 for x in S.separation(v, trip))
    rows = S.cosines(v, occ, trip)
    assert rows[0]["word"] == "rose" and rows[0]["within"] > 0.9 > 0.2 > rows[0]["across"]
    assert S.cosines(None, occ, trip)[0]["within"] == S.cosines(None, occ, trip)[0]["across"] == 1.0


def test_contextual_vectors_find_the_word_in_a_window(tmp_path):
    from transformers import BertConfig, BertModel

    from hfrepro.lm.data import train_tokenizer

    tok = train_tokenizer(["She gave me a red rose today. Then he rose and left.\n"] * 20, 300)
    long_text = "and " * 30 + "then he rose and left " + "now " * 30
    occ = [*_occ(), S.Occurrence("rose", 1, long_text, long_text.index("rose"))]
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=24), add_pooling_layer=False)
    vecs = S.contextual_vectors(model, tok, occ, batch_size=2)
    assert vecs.shape == (5, 16)
    # the first occurrence's vector equals the encoder's output at the token of "rose" in that sentence alone
    enc = tok(occ[0].text, return_offsets_mapping=True)
    idx = next(t for t, (a, b) in enumerate(enc["offset_mapping"]) if b > occ[0].start and b > a)
    assert tok.convert_ids_to_tokens(enc["input_ids"][idx]).endswith("rose")
    alone = model(input_ids=torch.tensor([enc["input_ids"]])).last_hidden_state[0, idx]
    assert torch.allclose(vecs[0], alone, atol=1e-5)
    with pytest.raises(StopIteration):
        S.contextual_vectors(model, tok, [S.Occurrence("rose", 0, "rose", 99)])
