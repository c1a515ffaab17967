"""The BERT chapter's recipes on a tiny corpus: pre-training (MLM + NSP) with the Trainer, its left-to-right twin,
fill-mask on the saved folder, fine-tuning a classification head from the pre-trained and from random weights,
and the masked-token accuracy against a model that always answers one token."""

import json
import random
from types import SimpleNamespace

import pytest
import torch

from hfrepro.errors import UserError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two 'plays' whose subject decides the verb and (almost) the object; each play has its own genre."""
    rng = random.Random(0)
    subj = ["The king", "A queen", "The fool", "My lord", "Good Romeo", "Sweet Juliet", "The dog"]
    verb = ["speaks", "sleeps", "weeps", "laughs at", "loves", "fears", "calls"]
    obj = ["the moon.", "his sword.", "thee, sir.", "the crown.", "no man.", "the night!", "her heart?"]
    rows = []
    for k in range(600):
        play = "Comedy of Kings" if k % 2 else "Tragedy of Dogs"
        i = rng.randrange(3) + (0 if k % 2 else 4)
        text = " ".join(f"{subj[i]} {verb[i]} {obj[(i + rng.randrange(2)) % len(obj)]}" for _ in range(3))
        rows.append({"text": text, "work": play, "genre": play.split()[0].lower()})
    f = tmp_path_factory.mktemp("corpus") / "plays.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(f)


def _mlm_args(corpus, out, *more):
    return ["--budget", "tiny", "--dataset", corpus, "--vocab_size", "300", "--tokenizer_chars", "0",
            "--block_size", "24", "--n_layer", "1", "--n_embd", "32", "--n_head", "2", "--output_dir", str(out),
            "--per_device_train_batch_size", "16", "--max_steps", "40", "--learning_rate", "0.005",
            "--logging_steps", "5", "--eval_steps", "20", "--save_steps", "20", "--eval_windows", "30",
            "--eval_pairs", "40", "--fill_mask", "The king <mask> the moon.", "--threads", "1",
            "--disable_tqdm", "true", *map(str, more)]


@pytest.fixture(scope="module")
def bert_run(corpus, tmp_path_factory):
    from hfrepro.recipes import mlm

    out = tmp_path_factory.mktemp("runs") / "bert"
    return out, mlm.cli(_mlm_args(corpus, out))


def _log(folder):
    return [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]


def test_bert_pretrains_with_nsp_and_fills_masks(bert_run, capsys):
    from transformers import AutoModelForMaskedLM, RoFormerForMaskedLM, pipeline

    from hfrepro.cli import main

    out, m = bert_run
    assert m["steps"] == 40 and m["masked_tokens"] >= 30 and 0 <= m["nsp_accuracy"] <= 1 and m["nsp_pairs"] > 0
    assert 0 <= m["majority_baseline_accuracy"] < m["masked_accuracy"] <= 1     # the subject gives the verb away
    losses = [r["loss"] for r in _log(out) if "loss" in r]
    assert losses[-1] < losses[0] - 0.5
    assert '"RoFormerForMaskedLM"' in (out / "config.json").read_text()   # the tiny budget: rotary positions
    assert isinstance(AutoModelForMaskedLM.from_pretrained(out), RoFormerForMaskedLM)
    top = m["fill_mask"]["The king <mask> the moon."]
    assert len(top) == 5 and all(isinstance(t, str) and p >= 0 for t, p in top)
    preds = pipeline("fill-mask", model=str(out))("The king <mask> the moon.", top_k=3)
    assert len(preds) == 3 and all("<mask>" not in p["sequence"] for p in preds)
    with pytest.raises(SystemExit) as e:
        main(["fill-mask", "--model", str(out), "--text", "The king sleeps."])
    assert e.value.code == 2 and "no mask token" in capsys.readouterr().err


def test_left_to_right_twin_shares_the_tokenizer(bert_run, corpus, tmp_path):
    from hfrepro.recipes import mlm

    out, _ = bert_run
    m = mlm.cli(_mlm_args(corpus, tmp_path / "l2r", "--causal", "true", "--tokenizer", out, "--max_steps", "10"))
    assert m["steps"] == 10 and 0 <= m["left_to_right_accuracy"] <= 1 and m["masked_tokens"] >= 30
    assert (tmp_path / "l2r" / "tokenizer.json").read_text() == (out / "tokenizer.json").read_text()


def test_masked_lm_alone_without_nsp(bert_run, corpus, tmp_path):
    """--nsp false (RoBERTa's choice): single segments, no next-sentence head in the loss, an evaluation loss all
    the same (the Trainer is told the batches hold only `labels`)."""
    from hfrepro.recipes import mlm

    out, _ = bert_run
    m = mlm.cli(_mlm_args(corpus, tmp_path / "mlm", "--nsp", "false", "--tokenizer", out, "--max_steps", "10"))
    assert m["steps"] == 10 and m["eval_loss"] > 0 and "nsp_accuracy" not in m
    assert m["model"].endswith("(from scratch, rotary positions)")


def test_absolute_positions_train_bert_itself(bert_run, corpus, tmp_path):
    """--positions absolute: BERT's own learned position vectors; saved as a BertForPreTraining, with a twin of the
    same kind."""
    from transformers import BertForMaskedLM, BertLMHeadModel

    from hfrepro.recipes import mlm

    out, _ = bert_run
    common = ("--positions", "absolute", "--tokenizer", out, "--max_steps", "10")
    m = mlm.cli(_mlm_args(corpus, tmp_path / "abs", *common))
    assert m["steps"] == 10 and 0 <= m["nsp_accuracy"] <= 1
    assert m["model"].endswith("(from scratch, absolute positions)")
    assert '"BertForPreTraining"' in (tmp_path / "abs" / "config.json").read_text()
    assert isinstance(BertForMaskedLM.from_pretrained(tmp_path / "abs"), BertForMaskedLM)
    mlm.cli(_mlm_args(corpus, tmp_path / "abs-l2r", *common, "--causal", "true"))
    assert isinstance(BertLMHeadModel.from_pretrained(tmp_path / "abs-l2r"), BertLMHeadModel)


def test_classify_from_pretrained_and_random_answers_the_same_items(bert_run, corpus, tmp_path):
    from hfrepro.recipes import classify

    out, _ = bert_run
    common = ["--budget", "tiny", "--model_name_or_path", str(out), "--dataset", corpus, "--task", "label",
              "--label_column", "genre", "--label_map", "none", "--min_words", "3", "--max_steps", "6",
              "--threads", "1", "--disable_tqdm", "true"]
    pre = classify.cli([*common, "--output_dir", str(tmp_path / "pre")])
    rnd = classify.cli([*common, "--random_init", "true", "--output_dir", str(tmp_path / "rnd")])
    assert pre["labels"] == rnd["labels"] == ["comedy", "tragedy"] and pre["steps"] == rnd["steps"] == 6
    a, b = ((tmp_path / d / "predictions.jsonl").read_text().splitlines() for d in ("pre", "rnd"))
    assert len(a) == pre["test_examples"] and [json.loads(x)["text"] for x in a] == [json.loads(x)["text"] for x in b]
    assert pre["accuracy"] == sum(json.loads(x)["prediction"] == json.loads(x)["label"] for x in a) / len(a)


def test_classify_word_order_task_pairs_both_arms_on_the_same_items(bert_run, corpus, tmp_path):
    """--task order: both classes hold the same words; the two arms score the same held-out texts."""
    from hfrepro.recipes import classify

    out, _ = bert_run
    common = ["--budget", "tiny", "--model_name_or_path", str(out), "--dataset", corpus, "--task", "order",
              "--min_words", "6", "--max_words", "9", "--max_steps", "6", "--threads", "1", "--disable_tqdm", "true"]
    pre = classify.cli([*common, "--output_dir", str(tmp_path / "pre")])
    rnd = classify.cli([*common, "--random_init", "true", "--output_dir", str(tmp_path / "rnd")])
    assert pre["labels"] == rnd["labels"] == ["as written", "shuffled"]
    a, b = ([json.loads(x) for x in (tmp_path / d / "predictions.jsonl").read_text().splitlines()]
            for d in ("pre", "rnd"))
    assert [x["text"] for x in a] == [x["text"] for x in b] and len(a) == pre["test_examples"]
    assert all(len(x["text"].split()) == 9 for x in a)
    assert 0.25 < sum(x["label"] == "shuffled" for x in a) / len(a) < 0.75
    written = {" ".join(json.loads(r)["text"].split()[:9]) for r in open(corpus, encoding="utf-8")}
    assert all((x["text"] in written) is (x["label"] == "as written") for x in a)   # shuffled texts are not as written


def test_bad_arguments_are_refused_before_loading(tmp_path):
    from hfrepro.recipes import classify, mlm

    with pytest.raises(UserError, match="cannot continue an encoder"):
        mlm.cli(["--budget", "tiny", "--causal", "true", "--model_name_or_path", "minilm-l6",
                 "--output_dir", str(tmp_path / "x")])
    with pytest.raises(UserError, match="--target_share must be in"):
        mlm.cli(["--budget", "tiny", "--causal", "true", "--target_share", "0", "--output_dir", str(tmp_path / "w")])
    with pytest.raises(UserError, match="model_name_or_path is required"):
        classify.cli(["--budget", "tiny", "--output_dir", str(tmp_path / "y")])
    for bad, msg in ((["--task", "genre"], "is not a task"), (["--min_words", "30", "--max_words", "9"], "min_words"),
                     (["--eval_split", "train"], "eval_split"),
                     (["--label_column", "module"], "read by --task label only"),  # forgot --task label: not ignored
                     (["--label_map", "none"], "add --task label")):
        with pytest.raises(UserError, match=msg):
            classify.cli(["--budget", "tiny", "--model_name_or_path", "minilm-l6", *bad,
                          "--output_dir", str(tmp_path / "v")])
    assert not (tmp_path / "v").exists()
    with pytest.raises(UserError, match="unknown label map"):
        classify.cli(["--budget", "tiny", "--model_name_or_path", "minilm-l6", "--task", "label", "--label_map", "nope",
                      "--output_dir", str(tmp_path / "z")])


def test_masked_accuracy_counts_what_it_says(corpus):
    """A model that always answers token X scores exactly the share of masked tokens equal to X."""
    from hfrepro.bert.mlm import mask_absorbs_space, masked_accuracy
    from hfrepro.lm.data import train_tokenizer

    docs = [json.loads(x)["text"] + "\n" for x in open(corpus).read().splitlines()[:80]]
    tok = mask_absorbs_space(train_tokenizer(docs, 300))
    flat = [t for d in docs for t in tok(d, add_special_tokens=False)["input_ids"]]

    class Always(torch.nn.Module):
        def __init__(self, tid):
            super().__init__()
            self.w, self.tid = torch.nn.Parameter(torch.zeros(1)), tid

        def forward(self, input_ids, **kw):
            logits = torch.zeros(*input_ids.shape, len(tok))
            logits[..., self.tid] = 1.0
            return SimpleNamespace(logits=logits)

    the = tok.convert_tokens_to_ids("Ġthe")
    r = masked_accuracy(Always(the), tok, flat, max_length=16, seed=3, majority_id=the)
    assert r["masked_tokens"] > 50
    assert r["masked_accuracy"] == r["majority_baseline_accuracy"] > 0
    assert masked_accuracy(Always(tok.mask_token_id), tok, flat, max_length=16, seed=3)["masked_accuracy"] == 0
    again = masked_accuracy(Always(the), tok, flat, max_length=16, seed=3)
    assert again["masked_tokens"] == r["masked_tokens"]             # the seed fixes the masked positions
