"""The SFT pieces recipes/sft.py builds its SFTTrainer from, on a tiny random Llama with SmolLM2's tokenizer
conventions (pad = eos = <|im_end|>): completion-only and assistant-only loss, the per-turn fallback, the
trainable parameters of each method, the cost rules."""

# pytest fixtures come from finetune_helpers (imported below), and tests name them as arguments:
# ruff: noqa: F811
import pytest
import torch
from finetune_helpers import tiny_model_dir, tiny_tok  # noqa: F401  (fixtures)
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer

from hfrepro.errors import UserError
from hfrepro.finetune import sft
from hfrepro.lora import LoraArguments, count_parameters, lora_config
from hfrepro.models import load_causal_lm

PC = [{"prompt": f"{w} ->", "completion": f" {p}"}
      for w, p in [("cat", "noun"), ("run", "verb"), ("big", "adjective"), ("fast", "adverb")] * 4]
CHAT = [{"messages": [{"role": "user", "content": "The cat sat?"}, {"role": "assistant", "content": "On the mat."},
                      {"role": "user", "content": "And the dog?"},
                      {"role": "assistant", "content": "On the log."}]}] * 8


def trainer(model_dir, rows, method, tmp_path, tokenizer=None):
    """The SFTTrainer as recipes/sft.py builds it (no training)."""
    tok = tokenizer or AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "right"
    model = load_causal_lm(str(model_dir))
    train, kind = sft.as_dataset(rows)
    args = SFTConfig(output_dir=str(tmp_path / method), max_steps=1, bf16=False, activation_checkpointing=False,
                     report_to="none", use_cpu=True)
    train, _, kind, args.assistant_only_loss = sft.assistant_only(tok, train, None, kind, print)
    info = sft.make_head_only(model) if method == "head" else {}
    peft = lora_config(model, LoraArguments()) if method == "lora" else None
    t = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tok, peft_config=peft)
    t.head_info = info
    return t


def _labels_text(tok, ex):
    return tok.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != -100])


def test_completion_only_loss_and_eos_is_trained(tiny_model_dir, tmp_path):
    t = trainer(tiny_model_dir, PC, "full", tmp_path)
    tok = t.processing_class
    assert tok.pad_token == tok.eos_token == "<|im_end|>"  # SmolLM2's pitfall: pad IS eos
    ex = t.train_dataset[0]
    assert _labels_text(tok, ex) == " noun<|im_end|>"       # prompt masked, answer + eos learnt
    batch = t.data_collator([t.train_dataset[i] for i in (0, 2)])  # different lengths -> padding
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        n = int(mask.sum())
        assert labels[n - 1] == tok.eos_token_id           # the real eos keeps its label...
        assert (labels[n:] == -100).all()                  # ...padding (the same id) does not


def test_chat_assistant_only_loss_with_derived_template(tiny_model_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    shipped = tok.chat_template
    t = trainer(tiny_model_dir, CHAT, "lora", tmp_path, tokenizer=tok)
    assert t.args.assistant_only_loss and "{% generation %}" in tok.chat_template
    assert shipped == tok.chat_template.replace(sft._CHATML_TURN_MARKED, sft._CHATML_TURN)
    learnt = _labels_text(tok, t.train_dataset[0])
    assert learnt == "On the mat.<|im_end|>On the log.<|im_end|>"   # every assistant turn, nothing else


def test_unmarkable_template_falls_back_to_turns(tiny_model_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
                         "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    assert sft.training_chat_template(tok) == ""
    t = trainer(tiny_model_dir, CHAT, "full", tmp_path, tokenizer=tok)
    assert len(t.train_dataset) == 16 and not t.args.assistant_only_loss  # one example per assistant turn


def test_methods_trainable_parameters(tiny_model_dir, tiny_tok, tmp_path):
    counts = {}
    for m in sft.METHODS:
        t = trainer(tiny_model_dir, PC, m, tmp_path)
        counts[m] = count_parameters(t.model)
        if m == "head":
            model = t.model
            assert t.head_info == {"head_untied": True, "head_modules": ["lm_head", "norm"]}
            assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
            assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)  # same outputs at step 0
            assert {n for n, p in model.named_parameters() if p.requires_grad} == {"lm_head.weight",
                                                                                     "model.norm.weight"}
    vocab, hidden = len(tiny_tok), 32
    base = counts["full"][1]
    assert counts["full"] == (base, base)
    assert counts["head"] == (vocab * hidden + hidden, base + vocab * hidden)  # the untied copy is counted
    r = 8  # q (32->32), k, v (32->16), o (32->32), 2 layers
    assert counts["lora"] == (2 * r * ((32 + 32) + (32 + 16) * 2 + (32 + 32)), base + counts["lora"][0])


def test_formats_and_bad_rows():
    assert sft.dataset_kind(PC[0]) == "prompt_completion" and sft.dataset_kind(CHAT[0]) == "messages"
    assert sft.dataset_kind({"text": "x"}) == "text"
    ds, kind = sft.as_dataset([{**PC[0], "label": 3}])
    assert kind == "prompt_completion" and ds.column_names == ["prompt", "completion"]   # extra keys dropped
    with pytest.raises(UserError, match="empty"):
        sft.as_dataset([])
    with pytest.raises(UserError, match="cannot tell the dataset format"):
        sft.as_dataset([{"question": "q", "answer": "a"}])


def test_no_checkpointing_under_either_name():
    args = SFTConfig(output_dir="x", bf16=False, use_cpu=True)
    assert args.gradient_checkpointing            # TRL's default
    sft.no_activation_checkpointing(args)
    assert not args.gradient_checkpointing and not args.activation_checkpointing


def test_flops_rules():
    n = 1000
    assert sft.flops_per_token("full", n, n) == 6 * n
    assert sft.flops_per_token("lora", n + 10, 10) == 4 * n + 60
    assert sft.flops_per_token("head", n, 100, 100) == 2 * n + 400
