"""A tiny chat model + tokenizer (random weights, SmolLM2's chat template and its pad == eos pitfall) and the
tiny preference file, for fast RLHF tests. Not a test module."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PREFS = FIXTURES / "prefs_tiny.jsonl"
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def make_tiny_chat_model(folder: Path, layers: int = 2) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hfrepro.tokenizer import train_bpe

    texts = [line for line in (FIXTURES / "tiny.txt").read_text().splitlines()]
    for line in PREFS.read_text().splitlines():
        r = json.loads(line)
        texts += [m["content"] for m in r["prompt"]] + [r["chosen"][0]["content"], r["rejected"][0]["content"]]
    tok = train_bpe(texts * 3, vocab_size=420, min_frequency=1,
                    special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "<mask>"))
    tok.chat_template = CHAT_TEMPLATE
    tok.pad_token = "<|im_end|>"  # as SmolLM2 ships it: pad == eos
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


TINY = dict(dataset=str(PREFS), threads=1, eval_prompts=4, eval_samples=1, sft_examples=16, sft_steps=2,
            sft_batch_size=4, sft_learning_rate=1e-3, lora_r=4, lora_alpha=8, rm_pairs=16, rm_batch_size=4,
            rm_layers=1, rm_trainable_layers=1, rl_steps=2, rl_batch_size=4, rl_micro_batch_size=2,
            rl_learning_rate=1e-3, max_new_tokens=4, save_steps=0, samples_per_step=2, num_generations=2,
            value_trainable_layers=1)


def tiny_argv(out: Path, model: Path, **kw) -> list[str]:
    """Arguments of recipes/rlhf.py for a run of seconds on the tiny model (the tiny budget, smaller)."""
    d = {**TINY, "output_dir": str(out), "model": str(model), **kw}
    return ["--budget", "tiny", *[a for k, v in d.items() for a in (f"--{k}", str(v))]]
