"""The core SFT API on a tiny random Llama with SmolLM2's tokenizer conventions (pad = eos = <|im_end|>)."""

import json

import pytest
import torch

from finetune_helpers import tiny_model_dir, tiny_tok  # noqa: F401  (fixtures)
from hfrepro.errors import UserError
from hfrepro.finetune import sft

PC = [{"prompt": f"{w} ->", "completion": f" {p}"}
      for w, p in [("cat", "noun"), ("run", "verb"), ("big", "adjective"), ("fast", "adverb")] * 4]
CHAT = [{"messages": [{"role": "user", "content": "The cat sat?"}, {"role": "assistant", "content": "On the mat."},
                      {"role": "user", "content": "And the dog?"}, {"role": "assistant", "content": "On the log."}]}] * 8


def _labels_text(tok, ex):
    return tok.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != -100])


def test_completion_only_loss_and_eos_is_trained(tiny_model_dir, tmp_path):
    s = sft.build_trainer(str(tiny_model_dir), PC, method="full", run_dir=tmp_path / "r", max_steps=1, echo=False)
    tok = s.tokenizer
    assert tok.pad_token == tok.eos_token == "<|im_end|>"  # SmolLM2's pitfall: pad IS eos
    ex = s.trainer.train_dataset[0]
    assert _labels_text(tok, ex) == " noun<|im_end|>"       # prompt masked, answer + eos learnt
    batch = s.trainer.data_collator([s.trainer.train_dataset[i] for i in (0, 2)])  # different lengths -> padding
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        n = int(mask.sum())
        assert labels[n - 1] == tok.eos_token_id           # the real eos keeps its label...
        assert (labels[n:] == -100).all()                  # ...padding (the same id) does not


def test_chat_assistant_only_loss_with_derived_template(tiny_model_dir, tmp_path):
    s = sft.build_trainer(str(tiny_model_dir), CHAT, method="lora", run_dir=tmp_path / "r", max_steps=1, echo=False)
    assert s.assistant_only and "{% generation %}" in s.tokenizer.chat_template
    assert s.original_template == s.tokenizer.chat_template.replace(
        sft._CHATML_TURN_MARKED, sft._CHATML_TURN)
    learnt = _labels_text(s.tokenizer, s.trainer.train_dataset[0])
    assert learnt == "On the mat.<|im_end|>On the log.<|im_end|>"   # every assistant turn, nothing else


def test_unmarkable_template_falls_back_to_turns(tiny_model_dir, tiny_tok, tmp_path):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
                         "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    assert sft.training_chat_template(tok) == ""
    s = sft.build_trainer(str(tiny_model_dir), CHAT, method="full", run_dir=tmp_path / "r", tokenizer=tok,
                          max_steps=1, echo=False)
    assert len(s.trainer.train_dataset) == 16  # one example per assistant turn


def test_methods_trainable_parameters(tiny_model_dir, tiny_tok, tmp_path):
    counts = {}
    for m in sft.METHODS:
        s = sft.build_trainer(str(tiny_model_dir), PC, method=m, run_dir=tmp_path / m, max_steps=1, echo=False)
        counts[m] = (s.trainable, s.total)
        model = s.trainer.model
        if m == "head":
            assert s.head_info == {"head_untied": True, "head_modules": ["lm_head", "norm"]}
            assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
            assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)  # same outputs at step 0
            names = {n for n, p in model.named_parameters() if p.requires_grad}
            assert names == {"lm_head.weight", "model.norm.weight"}
    vocab, hidden = len(tiny_tok), 32
    base = counts["full"][1]
    assert counts["full"] == (base, base)
    assert counts["head"] == (vocab * hidden + hidden, base + vocab * hidden)  # the untied copy is counted
    r = 8  # q (32->32), k, v (32->16), o (32->32), 2 layers
    assert counts["lora"] == (2 * r * ((32 + 32) + (32 + 16) * 2 + (32 + 32)), base + counts["lora"][0])


def test_train_save_load_and_cards(tiny_model_dir, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    m = sft.train_sft(str(tiny_model_dir), PC, method="head", run_dir=tmp_path / "head", max_steps=2,
                      per_device_train_batch_size=4, echo=False)
    assert m["steps"] == 2 and m["tokens_seen"] > 0 and m["finished"]
    assert m["flops_estimate"] == pytest.approx(m["flops_per_token"] * m["tokens_seen"])
    head = AutoModelForCausalLM.from_pretrained(m["model_dir"])
    assert not head.config.tie_word_embeddings
    assert not torch.equal(head.lm_head.weight, head.model.embed_tokens.weight)  # the head moved, the input did not
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert torch.equal(head.model.embed_tokens.weight, base.model.embed_tokens.weight)
    card = (tmp_path / "head" / "model" / "README.md").read_text()
    assert "head-only" in card and "trainable_params" in card

    m = sft.train_sft(str(tiny_model_dir), CHAT, method="lora", run_dir=tmp_path / "lora", max_steps=2,
                      merge=True, echo=False)
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").is_file()
    AutoPeftModelForCausalLM.from_pretrained(tmp_path / "lora" / "adapter")
    merged = AutoModelForCausalLM.from_pretrained(m["model_dir"])   # plain transformers
    assert not any("lora" in n for n, _ in merged.named_parameters())
    tok_cfg = json.loads((tmp_path / "lora" / "model" / "tokenizer_config.json").read_text())
    assert "{% generation %}" not in (tmp_path / "lora" / "model" / "chat_template.jinja").read_text()
    assert tok_cfg["pad_token"] == "<|im_end|>"
    log = (tmp_path / "lora" / "output.log").read_text()
    assert "Estimated cost" in log and "Completed epoch" in log and "Fine-tune succeeded" in log


def test_interrupted_training_resumes_from_checkpoint(tiny_model_dir, tmp_path):
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt

    kw = dict(method="full", run_dir=tmp_path / "r", max_steps=5, save_strategy="steps", save_steps=1,
              save_total_limit=2, per_device_train_batch_size=4, echo=False)
    with pytest.raises(KeyboardInterrupt):
        sft.train_sft(str(tiny_model_dir), PC, callbacks=[Kill()], **kw)
    ckpts = sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("checkpoint-*"))
    assert "checkpoint-2" in ckpts or "checkpoint-3" in ckpts
    m = sft.train_sft(str(tiny_model_dir), PC, **kw)
    assert m["steps"] == 5 and m["resumed_from"].endswith(("checkpoint-2", "checkpoint-3"))
    log = (tmp_path / "r" / "output.log").read_text()
    assert "Resuming from" in log
    # a finished identical run is not trained again; a different config in the same folder is refused
    again = sft.train_sft(str(tiny_model_dir), PC, **kw)
    assert again["steps"] == 5 and again.get("resumed_from") == m["resumed_from"]
    with pytest.raises(UserError, match="different config"):
        sft.train_sft(str(tiny_model_dir), PC, **{**kw, "max_steps": 6})


def test_bad_inputs(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="unknown method"):
        sft.train_sft(str(tiny_model_dir), PC, method="prefix", run_dir=tmp_path / "a")
    with pytest.raises(UserError, match="empty"):
        sft.train_sft(str(tiny_model_dir), [], run_dir=tmp_path / "b")
    with pytest.raises(UserError, match="cannot tell the dataset format"):
        sft.train_sft(str(tiny_model_dir), [{"question": "q", "answer": "a"}], run_dir=tmp_path / "c")


def test_flops_rules():
    n = 1000
    assert sft.flops_per_token("full", n, n) == 6 * n
    assert sft.flops_per_token("lora", n + 10, 10) == 4 * n + 60
    assert sft.flops_per_token("head", n, 100, 100) == 2 * n + 400
