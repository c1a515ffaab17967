"""LSTM, GPT and BERT training on a tiny corpus: they learn, resume after a crash, and open in pipelines."""

import json
import random

import pytest
import torch

from hfrepro.errors import UserError


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    rng = random.Random(0)
    subj = ["The king", "A queen", "The fool", "My lord", "Good Romeo", "Sweet Juliet", "The dog"]
    verb = ["speaks", "sleeps", "weeps", "laughs at", "loves", "fears", "calls"]
    obj = ["the moon.", "his sword.", "thee, sir.", "the crown.", "no man.", "the night!", "her heart?"]
    lines = []
    for _ in range(400):  # the subject decides the verb and (almost) the object: context predicts masked words
        i = rng.randrange(len(subj))
        lines.append(f"{subj[i]} {verb[i]} {obj[(i + rng.randrange(2)) % len(obj)]}")
    f = tmp_path_factory.mktemp("corpus") / "plays.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(f)


def _lstm_args(corpus_file, out, **kw):
    from hfrepro.lm.lstm import LSTMArguments
    base = dict(dataset=corpus_file, vocab_size=300, block_size=16, eval_max_chars=600, val_max_chars=600,
                output_dir=str(out), d_model=32, max_steps=6, batch_size=4, warmup_steps=2, logging_steps=1,
                eval_steps=3, save_steps=2, seed=0)
    base.update(kw)
    return LSTMArguments(**base)


def test_lstm_resumes_exactly_where_it_stopped(corpus_file, tmp_path):
    from safetensors.torch import load_file

    from hfrepro.config import resolved
    from hfrepro.lm import lstm

    a = _lstm_args(corpus_file, tmp_path / "straight")
    full = lstm.train(a, resolved(a), progress=False)
    assert full["steps"] == 6 and full["test_bits_per_character"] > 0

    b = _lstm_args(corpus_file, tmp_path / "killed", stop_after_steps=3)
    assert lstm.train(b, resolved(b), progress=False) is None      # stopped at step 3; last checkpoint: 2
    assert (tmp_path / "killed" / "checkpoints" / "checkpoint-2").is_dir()
    b.stop_after_steps = 0
    resumed = lstm.train(b, resolved(b), progress=False)
    assert resumed["steps"] == 6
    wa = load_file(str(tmp_path / "straight" / "model" / "model.safetensors"))
    wb = load_file(str(tmp_path / "killed" / "model" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0)
    assert resumed["test_bits_per_character"] == pytest.approx(full["test_bits_per_character"], rel=1e-9)
    log = [json.loads(x) for x in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 3, 4, 5, 6]     # steps 1-3, then 3-6 again from checkpoint 2
    from hfrepro.cards import check_model_card
    card = tmp_path / "killed" / "model" / "README.md"
    assert "test_bits_per_character" in card.read_text() and check_model_card(card) == []
    # a different config in the same folder is refused
    c = _lstm_args(corpus_file, tmp_path / "killed", d_model=16)
    with pytest.raises(UserError, match="different config"):
        lstm.train(c, resolved(c), progress=False)


def _targs(out, **kw):
    from hfrepro.training import make_training_args
    base = dict(output_dir=str(out), max_steps=6, per_device_train_batch_size=4, learning_rate=3e-3,
                logging_steps=1, save_steps=2, eval_strategy="no", seed=0, disable_tqdm=True, optim="adamw_torch")
    base.update(kw)
    return make_training_args(**base)


class _Crash(Exception):
    pass


def _crash_after_first_save():
    from transformers import TrainerCallback

    class CrashAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise _Crash(f"simulated kill after saving step {state.global_step}")

    return CrashAfterSave()


def test_gpt_pretrains_resumes_after_a_crash_and_generates(corpus_file, tmp_path, capsys):
    from transformers import pipeline

    from hfrepro.config import resolved
    from hfrepro.lm import clm
    from hfrepro.lm.clm import CLMArguments

    args = CLMArguments(dataset=corpus_file, vocab_size=300, block_size=16, n_layer=1, n_embd=32, n_head=2,
                        eval_max_chars=600, val_max_chars=600)
    targs = _targs(tmp_path / "clm")
    config = resolved(args, targs)
    with pytest.raises(_Crash):
        clm.train(args, targs, config, extra_callbacks=[_crash_after_first_save()])
    targs = _targs(tmp_path / "clm")
    m = clm.train(args, targs, config)
    assert m["resumed_from"].endswith("checkpoint-2")
    assert m["steps"] == 6
    assert 0 < m["test_bits_per_character"] < 9
    log = [json.loads(x) for x in (tmp_path / "clm" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0]

    model_dir = tmp_path / "clm" / "model"
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= {p.name for p in model_dir.iterdir()}
    from hfrepro.cards import check_model_card
    assert check_model_card(model_dir / "README.md") == []
    gen = pipeline("text-generation", model=str(model_dir))
    out = gen("The king", max_new_tokens=5, do_sample=False)[0]["generated_text"]
    assert out.startswith("The king") and len(out) > len("The king")

    from hfrepro.cli import main
    with pytest.raises(SystemExit) as e:
        main(["generate", "--model", str(tmp_path / "clm"), "--prompt", "The king", "--temperature", "0.8",
              "--top-k", "20", "--top-p", "0.9", "--max-new-tokens", "5", "-n", "2"])
    assert e.value.code == 0
    assert capsys.readouterr().out.count("The king") == 2
    with pytest.raises(SystemExit) as e:
        main(["perplexity", "--model", str(tmp_path / "clm"), "--file", corpus_file])
    assert e.value.code == 0
    assert "bits per character" in capsys.readouterr().out


def test_bert_mlm_learns_and_fills_masks(corpus_file, tmp_path, capsys):
    from transformers import pipeline

    from hfrepro.config import resolved
    from hfrepro.lm import mlm
    from hfrepro.lm.mlm import MLMArguments

    args = MLMArguments(dataset=corpus_file, vocab_size=300, block_size=16, n_layer=1, n_embd=32, n_head=2,
                        eval_max_chars=2000, val_max_chars=600)
    def targs():
        return _targs(tmp_path / "mlm", max_steps=60, save_steps=30, learning_rate=3e-3, logging_steps=10,
                      per_device_train_batch_size=8)
    config = resolved(args, targs())
    with pytest.raises(_Crash):                                    # killed right after checkpoint-30
        mlm.train(args, targs(), config, extra_callbacks=[_crash_after_first_save()])
    m = mlm.train(args, targs(), config)
    assert m["resumed_from"].endswith("checkpoint-30") and m["steps"] == 60
    assert m["masked_tokens"] > 20
    assert 0 <= m["majority_baseline_accuracy"] <= m["masked_accuracy"] <= 1
    log = [json.loads(x) for x in (tmp_path / "mlm" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0] - 0.5
    fill = pipeline("fill-mask", model=str(tmp_path / "mlm" / "model"))
    preds = fill("The king <mask> the moon.", top_k=3)
    assert len(preds) == 3 and all("<mask>" not in p["sequence"] for p in preds)
    from hfrepro.cli import main
    with pytest.raises(SystemExit) as e:
        main(["fill-mask", "--model", str(tmp_path / "mlm"), "--text", "The king sleeps."])
    assert e.value.code == 2
    assert "no mask token" in capsys.readouterr().err


def test_temperature_raises_entropy_and_distinct_n():
    from hfrepro.lm.sampling import distinct_n, tempered_entropy_bits

    torch.manual_seed(0)
    logits = torch.randn(50, 100) * 3
    hs = [tempered_entropy_bits(logits, t) for t in (0, 0.25, 0.5, 1, 2, 8, 1000)]
    assert hs[0] == 0 and all(a < b for a, b in zip(hs, hs[1:]))
    assert hs[-1] == pytest.approx(torch.log2(torch.tensor(100.0)).item(), abs=1e-3)
    assert distinct_n(["a b a b", "a b c"], 1) == pytest.approx(3 / 7)
    assert distinct_n(["a b a b", "a b c"], 2) == pytest.approx(3 / 5)


def test_arch_counts_match_known_values():
    from hfrepro.lm.arch import ARCHS, table

    rows = {r["model"]: r for r in table([a for a in ARCHS if a.name in ("GPT-2 small", "BERT-base", "GPT-3 175B")])}
    assert rows["GPT-2 small"]["parameters"] == 124_439_808          # the released gpt2 checkpoint
    assert rows["BERT-base"]["parameters"] == 109_482_240            # bert-base-uncased
    assert abs(rows["GPT-3 175B"]["diff %"]) < 1
    assert all(r["within tolerance"] for r in rows.values())


def test_cli_errors_are_clear(capsys, tmp_path):
    from hfrepro.cli import main

    with pytest.raises(SystemExit) as e:
        main(["generate", "--model", str(tmp_path / "missing"), "--prompt", "x"])
    assert e.value.code == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(SystemExit) as e:
        main(["perplexity", "--model", str(tmp_path), "--file", str(tmp_path / "empty.txt")])
    assert e.value.code == 2


def test_masked_accuracy_counts_what_it_says(corpus_file):
    """A model that always answers token X scores exactly the share of masked tokens equal to X."""
    from types import SimpleNamespace

    from hfrepro.lm.data import train_tokenizer
    from hfrepro.lm.mlm import mask_absorbs_space, masked_accuracy

    docs = [ln + "\n" for ln in open(corpus_file).read().splitlines()[:80]]
    tok = mask_absorbs_space(train_tokenizer(docs, 300))

    class Always(torch.nn.Module):
        def __init__(self, tid):
            super().__init__()
            self.w, self.tid = torch.nn.Parameter(torch.zeros(1)), tid

        def forward(self, input_ids, **kw):
            logits = torch.zeros(*input_ids.shape, len(tok))
            logits[..., self.tid] = 1.0
            return SimpleNamespace(logits=logits)

    the = tok.convert_tokens_to_ids("Ġthe")
    r = masked_accuracy(Always(the), tok, docs, max_length=16, seed=3, majority_id=the)
    assert r["masked_tokens"] > 50
    assert r["masked_accuracy"] == r["majority_baseline_accuracy"] > 0
    assert masked_accuracy(Always(tok.mask_token_id), tok, docs, max_length=16, seed=3)["masked_accuracy"] == 0
    again = masked_accuracy(Always(the), tok, docs, max_length=16, seed=3)
    assert again["masked_tokens"] == r["masked_tokens"]             # the seed fixes the masked positions


def test_ngram_recipe_saves_models_and_reuses_them(corpus_file, tmp_path, capsys):
    from hfrepro.config import resolved
    from hfrepro.cards import check_model_card
    from hfrepro.lm import ngram
    from hfrepro.lm.ngram import NgramArguments

    args = NgramArguments(dataset=corpus_file, output_dir=str(tmp_path / "ng"), eval_max_chars=2000,
                          val_max_chars=2000, bigram_k_grid=[1.0, 0.01])
    first = ngram.run(args, resolved(args))
    assert first["resumed_models"] == []
    assert first["unigram"]["bits_per_character"] > first["kn3"]["bits_per_character"]
    assert check_model_card(tmp_path / "ng" / "models" / "kn3" / "README.md") == []
    again = ngram.run(args, resolved(args))          # a re-run (e.g. after a kill) reuses the saved folders
    assert again["resumed_models"] == ["bigram", "kn2", "kn3", "unigram"]
    assert again["kn3"]["bits"] == pytest.approx(first["kn3"]["bits"])
    from hfrepro.cli import main
    with pytest.raises(SystemExit) as e:
        main(["perplexity", "--model", str(tmp_path / "ng"), "--file", corpus_file])
    assert e.value.code == 0
    assert "3-gram kneser-ney" in capsys.readouterr().out
