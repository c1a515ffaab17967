"""The plain Trainer script that recipes/clm.py is measured against (bench/lm.py: recipe overhead).

What a newcomer would write without hfrepro: a LlamaForCausalLM (or GPT2LMHeadModel), a Dataset of token blocks, the
LM collator and `Trainer(...).train()`; the same model, data and training arguments as the recipe, none of its
plumbing (run folder, resume, JSONL log, NaN guard, model card, held-out scoring).

    python bench/plain_clm.py --max_steps 60
"""

import argparse
import tempfile
import time


def run(blocks, tokenizer, n_layer, n_embd, n_head, block_size, max_steps, batch_size, lr, seed, output_dir,
        architecture="llama"):
    import torch
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    torch.manual_seed(seed)
    if architecture == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=n_embd, num_hidden_layers=n_layer,
                                             intermediate_size=n_embd * 8 // 3 // 32 * 32, num_attention_heads=n_head,
                                             num_key_value_heads=n_head, max_position_embeddings=block_size,
                                             tie_word_embeddings=True))
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=block_size, n_embd=n_embd,
                                           n_layer=n_layer, n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                                           attn_pdrop=0.0))
    args = TrainingArguments(output_dir=output_dir, max_steps=max_steps, per_device_train_batch_size=batch_size,
                             learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=max(1, max_steps // 10),
                             weight_decay=0.01, adam_beta2=0.98, optim="adamw_torch", logging_steps=10,
                             save_strategy="no", report_to="none", seed=seed, use_cpu=not torch.cuda.is_available(),
                             dataloader_pin_memory=False, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"input_ids": blocks}),
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    t = time.perf_counter()
    trainer.train()
    return time.perf_counter() - t


def main():
    from hfrepro.lm.data import blocks, token_stream, train_tokenizer
    from hfrepro.lm.text import load_corpus

    ap = argparse.ArgumentParser()
    ap.add_argument("--max_steps", type=int, default=60)
    a = ap.parse_args()
    docs = load_corpus("shakespeare").documents("train", 400_000, seed=0)
    tok = train_tokenizer(docs, 4096)
    with tempfile.TemporaryDirectory() as d:
        s = run(blocks(token_stream(tok, docs), 128), tok, 2, 128, 2, 128, a.max_steps, 8, 3e-3, 0, d)
    print(f"{a.max_steps} steps in {s:.1f} s")


if __name__ == "__main__":
    main()
