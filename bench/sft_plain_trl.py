"""A plain TRL SFT script (no hfrepro), the reference `bench/sft.py` measures hfrepro's SFT against.

It is what a TRL user would write: load the model and tokenizer, an SFTConfig, an SFTTrainer (a PEFT LoRA
config for --method lora), train. Same settings as hfrepro's run (passed on the command line). Prints one
JSON line: tokens seen and training seconds.

    python bench/sft_plain_trl.py --model PATH --data rows.jsonl --method lora --max_steps 12 ...
"""

import argparse
import json
import time

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import SFTConfig, SFTTrainer

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--data", required=True)
ap.add_argument("--method", default="lora", choices=["lora", "full"])
ap.add_argument("--max_steps", type=int, default=12)
ap.add_argument("--batch_size", type=int, default=8)
ap.add_argument("--learning_rate", type=float, default=1e-3)
ap.add_argument("--max_length", type=int, default=128)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--output_dir", default="/tmp/sft-plain")
a = ap.parse_args()

torch.set_num_threads(a.threads)
set_seed(0)  # before the LoRA adapters are initialised (SFTTrainer wraps the model before Trainer seeds)
rows = [json.loads(x) for x in open(a.data)]
tok = AutoTokenizer.from_pretrained(a.model)
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
args = SFTConfig(output_dir=a.output_dir, max_steps=a.max_steps, per_device_train_batch_size=a.batch_size,
                 learning_rate=a.learning_rate, max_length=a.max_length, logging_steps=1, save_strategy="no",
                 seed=0, data_seed=0, bf16=False, gradient_checkpointing=False, report_to="none",
                 include_num_input_tokens_seen="non_padding", dataloader_pin_memory=False, disable_tqdm=True)
peft_config = (LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.05,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]) if a.method == "lora" else None)
trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                     peft_config=peft_config)
t0 = time.time()
out = trainer.train()
seconds = time.time() - t0
print(json.dumps({"tokens": int(trainer.state.num_input_tokens_seen), "seconds": seconds,
                  "train_loss": out.training_loss, "steps": trainer.state.global_step}))
