"""Stage 3 (translation) unit tests: tiny random models and a small fixture of pairs; seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hfrepro.config import load_yaml
from hfrepro.errors import UserError
from tests.test_reproduce import uncaptioned

FIX = Path(__file__).resolve().parent / "fixtures"

HYPS = ["대화 상자 편집기에서 콘트롤의 속성을 변경합니다.", "텍스트를 선택하십시오.", "필터 적용",
        "The cat sat on the mat.", "Choose Format - Character, then click OK."]
REFS = ["대화 상자 편집기에서 콘트롤의 속성 변경", "텍스트를 선택합니다.", "필터 적용",
        "The cat is sitting on the mat.", "Choose Format - Character and click OK."]


# --- BLEU / chrF metric module ------------------------------------------------------------------------------

def _sacrebleu_cli(ref: Path, hyp: Path, tok: str) -> list[float]:
    out = subprocess.run([sys.executable, "-m", "sacrebleu", str(ref), "-i", str(hyp), "-tok", tok,
                          "-m", "bleu", "chrf", "-b", "-w", "6"], capture_output=True, text=True, check=True)
    return [float(x) for x in json.loads(out.stdout)]  # `-b` with two metrics prints a JSON list


@pytest.mark.parametrize("tok", ["char", "13a"])
def test_project_bleu_equals_sacrebleu_command_line(tmp_path, tok):
    from hfrepro.seq2seq import scoring

    hyp, ref = scoring.write_lines(tmp_path / "hyp.txt", HYPS), scoring.write_lines(tmp_path / "ref.txt", REFS)
    cli_bleu, cli_chrf = _sacrebleu_cli(ref, hyp, tok)
    ours = scoring.score(scoring.read_lines(hyp), scoring.read_lines(ref), tok)
    assert ours["bleu"] == pytest.approx(cli_bleu, abs=5e-6)
    assert ours["chrf"] == pytest.approx(cli_chrf, abs=5e-6)
    assert f"tok:{tok}" in ours["bleu_signature"] and "version:" in ours["bleu_signature"]
    assert 0 < ours["bleu"] < 100


def test_metric_module_loads_offline_by_path_and_checks_input():
    import evaluate

    from hfrepro.seq2seq.scoring import METRIC_DIR

    src = (METRIC_DIR / "bleu.py").read_text(encoding="utf-8")
    assert all(not ln.startswith("import") or "," not in ln for ln in src.splitlines())  # one import per line
    m = evaluate.load(str(METRIC_DIR.resolve()))
    perfect = m.compute(predictions=["a b c d e"], references=[["a b c d e"]])
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    two_refs = m.compute(predictions=["a b c d e"], references=[["x y", "a b c d e"]])
    assert two_refs["bleu"] == pytest.approx(100.0) and "nrefs:2" in two_refs["bleu_signature"]
    with pytest.raises(ValueError, match="tokenizer"):
        m.compute(predictions=["a"], references=[["a"]], tokenize="nope")


def test_tokenize_choice_and_check():
    from hfrepro.seq2seq.scoring import check_tokenize, default_tokenize

    assert default_tokenize("ko") == "char" and default_tokenize("fr") == "13a" and default_tokenize("zh") == "zh"
    with pytest.raises(UserError, match="unknown BLEU tokenizer"):
        check_tokenize("words")
    with pytest.raises(UserError, match="SentencePiece|sentencepiece"):
        check_tokenize("flores200")


def test_one_line_keeps_files_and_memory_equal():
    from hfrepro.seq2seq.scoring import one_line
    assert one_line("a\rb\u2028c\nd") == "a b c d"


# --- pair files ----------------------------------------------------------------------------------------------

def test_pair_files_read(tmp_path):
    from hfrepro.seq2seq.data import load_pairs, read_pair_file

    rows, src, tgt = read_pair_file(FIX / "pairs_en_ko.tsv", "en", "ko")
    assert (src, tgt) == ("en", "ko") and len(rows) == 80 and set(rows[0]) == {"source", "target"}
    j = tmp_path / "p.jsonl"
    j.write_text('{"source": "Click OK.", "target": "확인을 누릅니다."}\n\n{"source": "Save", "target": "저장"}\n',
                 encoding="utf-8")
    assert [r["target"] for r in read_pair_file(j)[0]] == ["확인을 누릅니다.", "저장"]
    c = tmp_path / "p.csv"
    c.write_text('source,target,note\n"Hello, world",안녕,x\n', encoding="utf-8")
    assert read_pair_file(c)[0] == [{"source": "Hello, world", "target": "안녕"}]
    pairs = load_pairs(str(FIX / "pairs_en_ko.tsv"), "en", "ko")
    assert sum(len(pairs.splits[s]) for s in ("train", "validation", "test")) == 80
    assert pairs.source_lang == "en" and pairs.target_lang == "ko"


@pytest.mark.parametrize("name,content,match,line", [
    ("no_header.tsv", "Click OK.\t확인\n", "missing column", "no_header.tsv:1"),
    ("wrong_cols.tsv", "source\tmeaning\nClick\t확인\n", "missing column.*'target'", ":1"),
    ("empty_side.tsv", "source\ttarget\nClick\t확인\nSave\t \n", "line 3: column 'target' is empty", ":3"),
    ("short_row.tsv", "source\ttarget\nClick\t확인\nSave\n", "line 3 has 1 column", ":3"),
    ("missing_key.jsonl", '{"source": "a", "target": "b"}\n\n{"source": "c"}\n', "line 3: no key 'target'", ":3"),
    ("empty.jsonl", '{"source": "a", "target": "b"}\n{"source": "", "target": "b"}\n', "line 2: 'source' is empty",
     ":2"),
    ("number.jsonl", '{"source": "a", "target": 3}\n', "line 1: 'target' is a int", ":1"),
    ("bad.json.jsonl", '{"source": "a", "target": "b"}\n{"source": \n', "invalid JSON on line 2", ":2"),
    ("pairs.txt", "a\tb\n", "unsupported pair file type", "pairs.txt"),
])
def test_pair_file_errors_name_the_line(tmp_path, name, content, match, line):
    from hfrepro.seq2seq.data import read_pair_file

    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=match) as e:
        read_pair_file(p)
    assert line in (e.value.where or "")


def test_pair_file_wrong_encoding_names_the_line(tmp_path):
    from hfrepro.seq2seq.data import read_pair_file

    p = tmp_path / "cp949.tsv"
    p.write_bytes("source\ttarget\nClick\t확인\n".encode("utf-8") + "Save\t저장\n".encode("cp949"))
    with pytest.raises(UserError, match="not valid UTF-8.*line 3") as e:
        read_pair_file(p)
    assert e.value.where.endswith(":3") and "iconv" in e.value.fix


def test_unknown_dataset_and_direction():
    from hfrepro.seq2seq.data import load_pairs

    with pytest.raises(UserError, match="unknown parallel dataset"):
        load_pairs("lo-help-en-xx")
    with pytest.raises(UserError, match="not en->de"):
        load_pairs("lo-help-en-ko", "en", "de")


def test_buckets():
    from hfrepro.seq2seq.data import bucket_of
    assert [bucket_of(n) for n in (0, 1, 5, 6, 20, 21, 40, 41, 300)] == \
        ["1-5", "1-5", "1-5", "6-10", "11-20", "21-30", "31-40", "41+", "41+"]


# --- GRU models ----------------------------------------------------------------------------------------------

def _gru(attention: bool, V: int = 40, context_size: int | None = None, read: str = "after"):
    import torch

    from hfrepro.seq2seq.rnn import GRUSeq2Seq, GRUSeq2SeqConfig
    torch.manual_seed(0)
    return GRUSeq2Seq(GRUSeq2SeqConfig(vocab_size=V, embed_dim=16, hidden_size=24, attention=attention,
                                       context_size=context_size, attention_read=read, dropout=0.0)).eval()


@pytest.mark.parametrize("attention,context_size,read", [(False, None, "after"), (True, None, "after"),
                                                         (False, 4, "after"), (True, 4, "after"), (True, 4, "before")])
def test_teacher_forcing_runs_the_decoder_as_decoding_does(attention, context_size, read):
    """Training runs the decoder over the whole target in one call (Bahdanau's order: a step at a time); decoding
    steps one token at a time. The two give the same log-probabilities (and the same attention weights)."""
    import torch

    m = _gru(attention, context_size=context_size, read=read)
    x = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0]])
    y = torch.tensor([[11, 12, 13, 2], [14, 2, -100, -100]])
    with torch.no_grad():
        out = m(input_ids=x, labels=y)
        enc = m.encode(x, (x != 0).long())
        state, prev = enc["state"], torch.full((2,), m.config.decoder_start_token_id)
        for t in range(y.size(1)):
            logp, state, w = m.logprobs(enc, prev, state)
            assert torch.allclose(logp, out.logits[:, t].log_softmax(-1), atol=1e-5)
            if attention:
                assert torch.allclose(w, out.attentions[:, t], atol=1e-6)
            prev = y[:, t].clamp(min=0)


def test_the_fixed_vector_is_the_plain_models_only_view_of_the_source():
    """With context_size d the plain decoder reads d numbers of the source; the attention model reads the same d
    numbers plus the attention average of the 2 x hidden_size annotations; the rest of the two models is shared."""
    plain, att = _gru(False, context_size=4), _gru(True, context_size=4)
    assert plain.bottleneck.out_features == 4 and plain.decoder.input_size == 16 + 4
    assert plain.pre_output.in_features == 24 + 4 + 16 and att.pre_output.in_features == 24 + 4 + 16 + 48
    shapes = {k: v.shape for k, v in plain.state_dict().items()}
    extra = {k: v.shape for k, v in att.state_dict().items() if shapes.get(k) != v.shape}
    assert set(extra) == {"attn.weight", "pre_output.weight"}
    assert _gru(False).decoder.input_size == 16 + 48  # no bottleneck: the encoder's final states, 2 x 24
    before = _gru(True, context_size=4, read="before")  # Bahdanau's order: the read also goes into the GRU
    assert before.decoder.input_size == 16 + 4 + 48 and before.pre_output.in_features == att.pre_output.in_features
    assert _gru(False, context_size=4, read="before").decoder.input_size == 16 + 4  # no attention, nothing to feed


def test_reading_before_the_step_feeds_the_read_into_the_state():
    """Bahdanau's order: s_i depends on a_i, so changing a source token that only attention sees (the fixed
    vector is the same) changes the next state; Luong's order reads after the state, which does not change."""
    import torch

    x = torch.tensor([[5, 6, 7, 8, 2]])
    y = torch.tensor([[11, 12, 13, 2]])
    for read, moves in (("after", False), ("before", True)):
        m = _gru(True, context_size=4, read=read)
        with torch.no_grad():
            enc = m.encode(x, torch.ones_like(x))
            other = dict(enc, annotations=enc["annotations"] * 2)  # what attention reads, not the fixed vector
            s1 = m.decode(enc, y, enc["state"])[1]
            s2 = m.decode(other, y, enc["state"])[1]
        assert (not torch.allclose(s1, s2)) == moves


def test_attention_weights_are_a_distribution_over_real_source_tokens():
    import torch

    m = _gru(True)
    x = torch.tensor([[5, 6, 7, 2, 0, 0], [8, 9, 10, 11, 12, 2]])
    out = m(input_ids=x, labels=torch.tensor([[5, 6, 2], [7, 2, -100]]))
    a = out.attentions  # [B, T, S]
    assert a.shape == (2, 3, 6)
    assert torch.allclose(a.sum(-1), torch.ones(2, 3), atol=1e-5)
    assert a[0, :, 4:].abs().max() == 0  # padding never attended
    assert _gru(False)(input_ids=x, labels=torch.tensor([[5, 6, 2], [7, 2, -100]])).attentions is None


def test_padding_does_not_change_the_translation():
    import torch

    for att in (False, True):
        m = _gru(att)
        x = torch.tensor([[5, 6, 7, 2]])
        xp = torch.tensor([[5, 6, 7, 2, 0, 0, 0]])
        assert torch.equal(m.generate(x, max_new_tokens=6), m.generate(xp, max_new_tokens=6))


def test_beam_search_one_beam_is_greedy_and_beams_score_at_least_greedy():
    import torch

    m = _gru(True)
    x = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0]])
    greedy = m.generate(x, max_new_tokens=8)
    beam1 = m.generate(x, max_new_tokens=8, num_beams=1)
    assert torch.equal(greedy, beam1)
    beam4 = m.generate(x, max_new_tokens=8, num_beams=4, length_penalty=0.0)

    def logp(seq, b):  # total log-probability of a decoded sequence (up to and including </s>)
        seq = [t for t in seq.tolist() if t != 0]
        labels = torch.tensor([seq])
        out = m(input_ids=x[b:b + 1], labels=labels)
        return -out.loss.item() * len(seq)

    for b in range(2):
        if 2 in greedy[b].tolist() and 2 in beam4[b].tolist():
            assert logp(beam4[b], b) >= logp(greedy[b], b) - 1e-4


def _repeats_ngram(seq, n: int) -> bool:
    grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
    return len(grams) != len(set(grams))


@pytest.mark.parametrize("num_beams", [1, 3])
def test_no_repeat_ngram_guard_stops_loops_and_changes_nothing_before_them(num_beams):
    """A random GRU over 20 tokens loops; with no_repeat_ngram_size=3 no output 3-gram occurs twice, the output
    is the unguarded one up to the first repeat, and 0 turns the guard off."""
    import torch

    m = _gru(True, V=20)
    x = torch.tensor([[5, 6, 7, 2], [3, 4, 2, 0]])
    kw = dict(max_new_tokens=40, num_beams=num_beams)
    plain, guarded = m.generate(x, **kw), m.generate(x, no_repeat_ngram_size=3, **kw)
    assert torch.equal(plain, m.generate(x, no_repeat_ngram_size=0, **kw))
    rows = [[t for t in r.tolist() if t != 0] for r in plain]
    assert any(_repeats_ngram(r, 3) for r in rows)  # the premise: unguarded, it loops
    for b, row in enumerate(guarded.tolist()):
        out = [t for t in row if t != 0]
        assert not _repeats_ngram(out, 3)
        if num_beams == 1:  # greedy: the same tokens until the step that would have repeated a 3-gram
            first = next(i for i in range(3, len(rows[b]) + 1) if _repeats_ngram(rows[b][:i], 3))
            assert out[:first - 1] == rows[b][:first - 1] and out[first - 1] != rows[b][first - 1]


def test_gru_save_and_reload(tmp_path):
    import torch

    from hfrepro.seq2seq.rnn import GRUSeq2Seq
    m = _gru(True)
    m.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "hfrepro-gru-seq2seq"
    m2 = GRUSeq2Seq.from_pretrained(tmp_path).eval()
    x = torch.tensor([[5, 6, 7, 2]])
    assert torch.equal(m.generate(x, max_new_tokens=5), m2.generate(x, max_new_tokens=5))


def test_packed_encoder_equals_torchs_gru_to_the_bit():
    """The encoder's own packed bidirectional GRU (CPU, fp32) gives nn.GRU's annotations, final states and every
    gradient, equal to the bit, on unsorted sources of mixed lengths (one as long as the batch, one of length 1);
    the model trains with it on the CPU in fp32 and uses nn.GRU elsewhere."""
    import torch
    from torch import nn

    from hfrepro.seq2seq.rnn import cpu_fp32_training, packed_bigru

    torch.manual_seed(0)
    gru = nn.GRU(6, 5, batch_first=True, bidirectional=True)
    x = torch.randn(7, 9, 6)
    lengths = torch.tensor([3, 9, 1, 5, 9, 2, 7])
    weights = torch.randn(7, 9, 10)

    def run(f):
        xx = x.clone().requires_grad_(True)
        gru.zero_grad()
        out, h_n = f(nn.utils.rnn.pack_padded_sequence(xx, lengths, batch_first=True, enforce_sorted=False))
        padded, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=9)
        ((padded * weights).sum() + (h_n * torch.arange(1.0, 11.0).view(2, 1, 5)).sum()).backward()
        return [padded, h_n, xx.grad, *(p.grad for p in gru.parameters())]

    ours, torchs = run(lambda p: packed_bigru(gru, p)), run(gru)
    assert all(torch.equal(a, b) for a, b in zip(ours, torchs))
    assert not torch.equal(run(lambda p: packed_bigru(gru, p))[2], torchs[2] * 1.001)  # the comparison can fail
    assert cpu_fp32_training(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not cpu_fp32_training(x)
    with torch.no_grad():
        assert not cpu_fp32_training(x)


def test_gru_loss_sums_over_the_trainers_token_count():
    """Under the Trainer the loss is the sum over real target tokens / `num_items_in_batch` (the count over all
    processes and accumulated batches): two half-batches then add up to the loss of the whole batch; without the
    count it is the mean, as before."""
    import torch

    m = _gru(True)
    x = torch.tensor([[5, 6, 7, 2, 0], [8, 9, 10, 11, 2], [12, 2, 0, 0, 0], [13, 14, 2, 0, 0]])
    y = torch.tensor([[5, 6, 2, -100], [7, 8, 9, 2], [10, 2, -100, -100], [11, 12, 13, 2]])
    n = int((y != -100).sum())
    mean = m(input_ids=x, labels=y).loss
    assert torch.allclose(m(input_ids=x, labels=y, num_items_in_batch=n).loss, mean, atol=1e-6)
    halves = sum(m(input_ids=x[i:i + 2], labels=y[i:i + 2], num_items_in_batch=torch.tensor(n)).loss for i in (0, 2))
    assert torch.allclose(halves, mean, atol=1e-6)
    assert not torch.allclose(m(input_ids=x[:2], labels=y[:2]).loss + m(input_ids=x[2:], labels=y[2:]).loss, mean)


def test_length_grouped_order():
    """The GRU models' batches: deterministic per seed, every pair once per epoch (the incomplete batch left out),
    pairs of similar length together, and the batches in shuffled order, not in runs from long to short."""
    from hfrepro.seq2seq.data import length_grouped_order

    lengths = [(i * 37) % 200 + 1 for i in range(203)]
    a = length_grouped_order(lengths, 8, 40, seed=1)
    assert a == length_grouped_order(lengths, 8, 40, seed=1) != length_grouped_order(lengths, 8, 40, seed=2)
    assert len(a) == 40 * 8
    epoch = a[:25 * 8]  # 203 pairs: 25 full batches and 3 pairs left out
    assert len(set(epoch)) == 200
    batches = [a[i:i + 8] for i in range(0, len(a), 8)]
    assert sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches[:25]) / 25 < 30
    longest = [max(lengths[i] for i in b) for b in batches[:25]]
    assert longest != sorted(longest, reverse=True)
    with pytest.raises(UserError, match="cannot fill a batch"):
        length_grouped_order(lengths[:5], 8, 1, seed=0)


def test_romanize_fallback():
    from hfrepro.seq2seq.report import romanize
    assert romanize("한국어 OK") == "hangugeo OK"


def test_sentence_statistics_sum_to_the_corpus_scores():
    """The bootstrap scores resamples from summed sentence statistics: all sentences summed give exactly sacrebleu's
    corpus BLEU and chrF, and a subset's sum gives that subset's corpus score."""
    import sacrebleu

    from hfrepro.seq2seq import scoring

    for tok in ("char", "13a"):
        st = scoring.sentence_stats(HYPS, REFS, tok)
        assert scoring.score_from_stats("bleu", tok, st["bleu"].sum(0)) == pytest.approx(
            sacrebleu.BLEU(tokenize=tok).corpus_score(HYPS, [REFS]).score, abs=1e-9)
        assert scoring.score_from_stats("chrf", tok, st["chrf"].sum(0)) == pytest.approx(
            sacrebleu.CHRF().corpus_score(HYPS, [REFS]).score, abs=1e-9)
        assert scoring.score_from_stats("chrf", tok, st["chrf"][[0, 3]].sum(0)) == pytest.approx(
            sacrebleu.CHRF().corpus_score([HYPS[0], HYPS[3]], [[REFS[0], REFS[3]]]).score, abs=1e-9)


def test_subset_scores_equal_the_metric_modules_to_the_last_digit():
    """By-length and long/short scores come from summed sentence statistics, computed once per system: equal (==,
    not approximately) to the metric module's BLEU, chrF and lengths on the same sentences."""
    from hfrepro.seq2seq import scoring

    for tok in ("char", "13a"):
        st = scoring.sentence_stats(HYPS, REFS, tok)
        assert scoring.sentence_stats(list(HYPS), list(REFS), tok) is st  # computed once
        for idx in ([0], [1, 3], list(range(len(HYPS)))):
            got = scoring.subset_score(st, idx, tok)
            want = scoring.score([HYPS[i] for i in idx], [REFS[i] for i in idx], tok)
            assert got == {k: want[k] for k in ("bleu", "chrf", "sys_len", "ref_len")}
    sources = ["a b", "a b c d e f g h i j k l m n o p q r s t u v", "x", "y z", "one two three four five six"]
    rows = scoring.by_length(sources, HYPS, REFS, "13a")
    assert sum(r["sentences"] for r in rows) == len(HYPS)
    assert [r["bleu"] is None for r in rows] == [r["sentences"] == 0 for r in rows]


def test_paired_gap_and_interval():
    """Identical systems: every resample's gap is 0. A system right on every sentence against one that is
    always cut short: every resample favours it. The counts draw n sentences per resample."""
    import numpy as np

    from hfrepro.seq2seq import scoring

    counts = scoring.resample_counts(5, 300, np.random.default_rng(0))
    assert counts.shape == (300, 5) and (counts.sum(1) == 5).all()
    short = scoring.sentence_stats([h[: len(h) // 2] for h in REFS], REFS, "char")
    exact = scoring.sentence_stats(REFS, REFS, "char")
    gap, samples = scoring.paired_gap(short, short, "chrf", "char", counts)
    assert gap == 0 and not samples.any()
    gap, samples = scoring.paired_gap(short, exact, "bleu", "char", counts)
    lo, hi = scoring.interval(samples, 0.95)
    assert gap > 0 and 0 < lo <= hi and (samples > 0).all()
    assert scoring.interval(list(range(101)), 0.9) == pytest.approx((5.0, 95.0))


def _gaps(chrf: float, bleu: float, spread: float, n: int = 400, seed: int = 0) -> dict:
    """A language pair's synthetic long-sentence gaps: estimates and bootstrap samples spread around them."""
    import numpy as np

    noise = np.random.default_rng(seed).normal(size=2000)
    return {"n": n, "chrf": (chrf, chrf + spread * noise), "bleu": (bleu, bleu + spread * noise)}


@pytest.mark.parametrize("ko,fr,verdict", [
    ((3.0, 5.0), (2.0, 4.0), "REPRODUCED"),            # every gap clearly above 0
    ((3.0, 5.0), (0.3, 4.0), "INCONCLUSIVE"),          # en-fr chrF gap within its noise of 0
    ((3.0, 5.0), (-2.0, 4.0), "NOT REPRODUCED"),       # en-fr chrF clearly below 0: the smallest gap is negative
    ((-3.0, -5.0), (-2.0, -4.0), "NOT REPRODUCED"),    # attention behind everywhere
])
def test_attention_claim_verdicts(ko, fr, verdict):
    """s2s-attention-long: the smallest of the four attention − plain gaps (chrF and BLEU, en-ko and en-fr) with
    the bootstrap interval of that minimum, against 0."""
    from hfrepro.reproduce.seq2seq import attention_decision

    d = attention_decision({"en-ko": _gaps(*ko, spread=0.5), "en-fr": _gaps(*fr, spread=0.5, seed=1)}, size=8,
                           long_from=21)
    assert d.verdict == verdict
    assert d.estimate == min(*ko, *fr) and d.threshold == 0 and d.lo <= d.estimate + 1e-9
    assert "en-ko (n=400)" in d.evidence and "8-number fixed vector" in d.evidence


def test_attention_claim_interval_is_that_of_the_minimum():
    """Each language pair's gaps fall below 0 in 2% of the resamples (its own interval clears 0), in different
    resamples: their minimum falls below 0 in 4%, so the claim's interval reaches below 0."""
    import numpy as np

    from hfrepro.reproduce.seq2seq import attention_decision
    from hfrepro.seq2seq import scoring

    ko, fr = np.ones(2000), np.ones(2000)
    ko[:40], fr[40:80] = -1.0, -1.0
    assert scoring.interval(ko, 0.95)[0] > 0 and scoring.interval(fr, 0.95)[0] > 0
    d = attention_decision({"en-ko": {"n": 300, "chrf": (1.0, ko), "bleu": (1.0, ko)},
                            "en-fr": {"n": 700, "chrf": (1.0, fr), "bleu": (2.0, fr + 1)}}, size=4, long_from=21)
    assert (d.lo, d.hi, d.estimate) == (-1.0, 1.0, 1.0) and d.verdict == "INCONCLUSIVE"


# --- the recipe end to end, re-run, resume, the translate command --------------------------------------------

def _argv(out: Path, *extra: str) -> list[str]:
    """recipes/seq2seq.py at the tiny budget, on the 80-pair fixture, with models of a few thousand parameters."""
    return ["--budget", "tiny", "--dataset", str(FIX / "pairs_en_ko.tsv"), "--source_lang", "en",
            "--target_lang", "ko", "--output_dir", str(out), "--vocab_size", "300", "--embed_dim", "16",
            "--hidden_size", "24", "--d_model", "16", "--layers", "1", "--heads", "2", "--ffn_dim", "32",
            "--max_steps", "4", "--per_device_train_batch_size", "8", "--warmup_steps", "1", "--save_steps", "2",
            "--logging_steps", "2", "--num_beams", "2", "--eval_batch_size", "8", "--threads", "1", *extra]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("status.json", ".lock")}


def test_recipe_end_to_end_rerun_and_translate_command(tmp_path, capsys):
    """Three sub-runs, each the model's repository; the comparison beside them; the same command again changes
    nothing; a changed config is refused; `hfrepro translate` reads an arch's folder."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from hfrepro.cli import main
    from hfrepro.recipes.seq2seq import cli
    from hfrepro.seq2seq.rnn import GRUSeq2Seq

    out = tmp_path / "run"
    summary = cli(_argv(out))
    assert summary["archs"] == ["rnn", "rnn_attention", "transformer"]
    assert summary["long_check"] is None  # 8 test pairs, no sweep: the long-sentence gap is not measured
    for arch in summary["archs"]:
        d = out / arch
        for f in ("config.yaml", "metrics.json", "log.jsonl", "status.json", "hyp.txt", "ref.txt", "test.tsv",
                  "model.safetensors", "config.json", "tokenizer.json", "README.md", "checkpoint-4/trainer_state.json"):
            assert (d / f).is_file(), f"{arch}: {f} missing"
        m = json.loads((d / "metrics.json").read_text())
        assert m["steps"] == 4 and m["test_sentences"] == 8 and "tok:char" in m["bleu_signature"]
        assert sum(r["sentences"] for r in m["by_length"]) == 8 and m["source_tokens_seen"] > 0
        assert f"{m['bleu']:.4g}" in (d / "README.md").read_text()
        assert [r["step"] for r in map(json.loads, (d / "log.jsonl").read_text().splitlines()) if "loss" in r] == [2, 4]
    loaded = GRUSeq2Seq.from_pretrained(out / "rnn_attention")
    assert loaded.config.attention and AutoTokenizer.from_pretrained(out / "rnn").pad_token == "<pad>"
    assert AutoModelForSeq2SeqLM.from_pretrained(out / "transformer").config.model_type == "marian"
    for f in ("results.md", "bleu_by_length.png", "attention.png", "config.yaml", "metrics.json",
              "tokenizer/tokenizer.json"):
        assert (out / f).is_file(), f

    before = _files(out)
    assert cli(_argv(out)) == json.loads((out / "metrics.json").read_text())
    assert _files(out) == before  # a re-run of a finished command is a no-op
    with pytest.raises(UserError, match="different config.*max_steps"):
        cli(_argv(out, "--max_steps", "5"))
    replay = cli(["--config", str(out / "rnn" / "config.yaml"), "--output_dir", str(tmp_path / "replay")])
    assert replay["archs"] == ["rnn"]  # an arch's config.yaml replays that model (its card says so)
    assert json.loads((tmp_path / "replay" / "rnn" / "metrics.json").read_text())["train_loss"] == \
        json.loads((out / "rnn" / "metrics.json").read_text())["train_loss"]

    _source_dependence_is_the_whole_batchs(out)

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["translate", "--model", str(out / "rnn_attention"), "--num_beams", "2", "Apply Filter", "Save"])
    assert e.value.code == 0
    assert len(capsys.readouterr().out.strip("\n").split("\n")) == 2
    from hfrepro.seq2seq.decode import load_model, max_new_tokens_for, translate
    model, tok = load_model(out / "transformer")  # the Transformer's guard is transformers' own generate option
    import torch

    from hfrepro.seq2seq.data import encode
    x = torch.tensor(encode(tok, ["Apply Filter"]))
    ids = model.generate(input_ids=x, max_new_tokens=max_new_tokens_for(x.size(1)), do_sample=False,
                         no_repeat_ngram_size=1)[0].tolist()
    assert len(ids) == len(set(ids))  # no token twice
    guarded = translate(model, tok, ["Apply Filter"], no_repeat_ngram_size=1)
    assert guarded == [tok.decode(ids, skip_special_tokens=True).strip()] != translate(model, tok, ["Apply Filter"])
    with pytest.raises(SystemExit) as e:
        main(["translate", "--model", str(out / "rnn"), "--no_repeat_ngram_size", "-1", "Save"])
    assert e.value.code == 2 and "--no_repeat_ngram_size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["translate", "--model", str(out), "Apply Filter"])  # three models there: which one?
    assert e.value.code == 2 and "say which" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["translate", "--model", str(tmp_path / "nope"), "x"])
    assert e.value.code == 2


def _source_dependence_is_the_whole_batchs(out: Path):
    """The check's losses in chunks equal one forward pass over every sentence at once (its token-weighted mean)."""
    import torch
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq

    from hfrepro.seq2seq.data import features
    from hfrepro.seq2seq.decode import load_model, source_dependence

    lines = (FIX / "pairs_en_ko.tsv").read_text(encoding="utf-8").splitlines()[1:12]
    test = Dataset.from_dict({"source": [x.split("\t")[0] for x in lines], "target": [x.split("\t")[1] for x in lines]})
    for arch in ("rnn_attention", "transformer"):
        model, tok = load_model(out / arch)
        collate = DataCollatorForSeq2Seq(tok, model=model if arch == "transformer" else None, padding=True,
                                         label_pad_token_id=-100)
        batch = collate(list(features(tok, test)))
        with torch.no_grad():
            own = model(**batch).loss.item()
            batch["input_ids"] = torch.roll(batch["input_ids"], 1, 0)
            batch["attention_mask"] = torch.roll(batch["attention_mask"], 1, 0)
            other = model(**batch).loss.item()
        got = source_dependence(model, tok, test, chunk=4)
        assert got["test_loss"] == pytest.approx(own, abs=2e-4), arch
        assert got["test_loss_other_source"] == pytest.approx(other, abs=2e-4), arch
        assert source_dependence(model, tok, test, chunk=100) == got


def test_gru_accumulated_half_batches_train_as_one_batch(tmp_path):
    """Under the Trainer, 2 accumulated batches of 4 pairs give the GRU the same update as one batch of 8: the
    same pairs (length-grouped per update), the same loss and gradient norm."""
    from hfrepro.recipes.seq2seq import cli

    common = ["--arch", "rnn_attention", "--max_steps", "2", "--logging_steps", "1", "--num_beams", "1"]
    cli(_argv(tmp_path / "one", *common))
    cli(_argv(tmp_path / "acc", *common, "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2"))
    logs = [[json.loads(x) for x in (tmp_path / r / "rnn_attention" / "log.jsonl").read_text().splitlines()
             if '"loss"' in x] for r in ("one", "acc")]
    for a, b in zip(*logs):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5) and a["grad_norm"] == pytest.approx(b["grad_norm"],
                                                                                                    rel=1e-4)


@pytest.mark.parametrize("argv,match", [
    (["--arch", "rnn,lstm"], "unknown --arch 'lstm'"),
    (["--transformer_style", "post"], "unknown --transformer_style"),
    (["--attention_read", "during"], "unknown --attention_read 'during'"),
    (["--bleu_tokenize", "words"], "unknown BLEU tokenizer"),
    (["--resume_from_checkpoint", "x/checkpoint-2"], "a checkpoint belongs to one model"),
    (["--sweep_max_steps", "-1"], "--sweep_max_steps must be 0"),
    (["--transformer_max_steps", "-1"], "--transformer_max_steps must be 0"),
    (["--no_repeat_ngram_size", "-1"], r"--no_repeat_ngram_size must be 0 \(off\)"),
])
def test_argument_mistakes_stop_before_anything_is_written(tmp_path, argv, match):
    from hfrepro.recipes.seq2seq import cli

    with pytest.raises(UserError, match=match):
        cli(_argv(tmp_path / "run", *argv))
    assert not (tmp_path / "run").exists()


def test_bad_pair_file_exits_2_with_line(tmp_path, capsys):
    from hfrepro.cli import main

    bad = tmp_path / "bad.tsv"
    bad.write_text("source\ttarget\nClick\t확인\nSave\t\n", encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        main(["seq2seq", "--budget", "tiny", "--dataset", str(bad), "--output_dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "line 3" in err and "Traceback" not in err


@pytest.mark.parametrize("arch,how", [("rnn_attention", "same command"), ("transformer", "checkpoint path")])
def test_killed_training_resumes_to_the_same_weights(tmp_path, arch, how):
    """Train 4 updates straight; train again and leave the folder as a kill after the checkpoint at update 2
    would (later files gone, status running); the re-run resumes the Trainer at update 2 and ends with the very
    same weights."""
    import shutil

    from safetensors.torch import load_file

    from hfrepro.fsutil import atomic_write_json, read_json
    from hfrepro.recipes.seq2seq import cli

    a, b = tmp_path / "a", tmp_path / "b"
    cli(_argv(a, "--arch", arch, "--num_beams", "1"))
    cli(_argv(b, "--arch", arch, "--num_beams", "1"))
    sub = b / arch
    shutil.rmtree(sub / "checkpoint-4")
    for f in ("model.safetensors", "metrics.json", "hyp.txt", "README.md", b / "metrics.json", b / "results.md"):
        (sub / f).unlink()
    for d in (b, sub):
        atomic_write_json(d / "status.json", {**read_json(d / "status.json"), "status": "running"})
    resume = ["--resume_from_checkpoint", str(sub / "checkpoint-2")] if how == "checkpoint path" else []
    cli(_argv(b, "--arch", arch, "--num_beams", "1", *resume))
    assert read_json(sub / "status.json")["resumed_from"] == str(sub / "checkpoint-2")
    wa, wb = load_file(a / arch / "model.safetensors"), load_file(sub / "model.safetensors")
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    assert read_json(a / "metrics.json")[f"{arch}_bleu"] == read_json(b / "metrics.json")[f"{arch}_bleu"]
    steps = [r["step"] for r in map(json.loads, (sub / "log.jsonl").read_text().splitlines()) if "loss" in r]
    assert steps == [2, 4]  # the rows the killed run wrote after step 2 are dropped, then written again


@pytest.mark.parametrize("style,model_type", [("pre_ln", "m2m_100"), ("marian", "marian")])
def test_transformer_styles_save_and_load(tmp_path, style, model_type):
    import torch

    from hfrepro.recipes.seq2seq import ScriptArguments, build_model
    from hfrepro.seq2seq.data import load_pairs, train_tokenizer
    from hfrepro.seq2seq.decode import arch_of, load_model, translate

    tok = train_tokenizer(load_pairs(str(FIX / "pairs_en_ko.tsv"), "en", "ko"), 300)
    m = build_model("transformer", tok, ScriptArguments(d_model=16, layers=1, heads=2, ffn_dim=32,
                                                        transformer_style=style), seed=0).eval()
    assert m.config.model_type == model_type
    m.save_pretrained(tmp_path / "transformer")
    tok.save_pretrained(tmp_path / "transformer")
    m2, tok2 = load_model(tmp_path)  # a run folder holding one arch
    assert arch_of(m2) == "transformer"
    with torch.no_grad():
        assert translate(m, tok, ["Apply Filter"], num_beams=2) == translate(m2, tok2, ["Apply Filter"], num_beams=2)


def test_stage_section_reads_both_runs_and_the_sweep(tmp_path):
    """The main job's stage on two tiny runs with a sweep (the fixture stands in for both language pairs): the report
    shows the sweep, the per-bucket gaps and the curves; the claim is not judged at the tiny budget, and at the
    default budget 8 test sentences are too few long ones to decide it."""
    from hfrepro.claims import StageContext
    from hfrepro.recipes.seq2seq import cli
    from hfrepro.reproduce.seq2seq import CLAIM, section

    stage = tmp_path / "seq2seq"
    for name in ("run", "fr"):
        summary = cli(_argv(stage / name, "--arch", "rnn,rnn_attention", "--sweep_context_sizes", "4",
                            "--sweep_max_steps", "6", "--num_beams", "1", "--no_repeat_ngram_size", "3",
                            "--eval_strategy", "steps", "--eval_steps", "2"))
        assert summary["models"] == ["rnn", "rnn_attention", "rnn-c4", "rnn_attention-c4"]
        assert {r["context_size"] for r in summary["sweep"]} == {4, 48}
        assert sum(b["n"] for b in summary["bucket_gaps"]) == 8  # every test sentence in one bucket
    # the sweep's models train their own number of updates, and their folder's config replays exactly that
    assert json.loads((stage / "run" / "rnn-c4" / "metrics.json").read_text())["val_curve"][-1][0] == 6
    assert json.loads((stage / "run" / "rnn" / "metrics.json").read_text())["steps"] == 4
    assert load_yaml(stage / "run" / "rnn-c4" / "config.yaml")["max_steps"] == 6
    for budget, why in (("tiny", "tiny budget: not judged"), ("default", "too few long test sentences")):
        out = section(StageContext(dir=stage, root=tmp_path, budget=budget, seed=0, threads=1))
        evidence, held = out.claims[CLAIM]
        assert held is None and why in evidence
        assert "The fixed vector's size" in out.markdown and "attention − plain [95%]" in out.markdown
        assert "4 updates of 8 pairs (6 for the sweep's smaller fixed vectors)" in out.markdown
        assert "greedy decoding (no 3-gram of output tokens twice: a loop guard) of the whole" in out.markdown
        assert uncaptioned(out.markdown) == []  # every plot has its line saying what to look at
    assert uncaptioned((stage / "run" / "results.md").read_text(encoding="utf-8")) == []
    assert (stage / "sweep.png").is_file() and (stage / "run" / "curves.png").is_file()
