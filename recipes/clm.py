"""Pretrain a GPT (a decoder-only transformer) from scratch on Shakespeare's plays with the transformers Trainer.

The attention step of the perplexity ladder (Radford et al. 2018, 2019): a byte-level BPE trained on the
training text, the speeches cut into blocks of `block_size` tokens (each speech starts with <s> and ends with
its newline), a small GPT from scratch, next-token prediction with `DataCollatorForLanguageModeling(mlm=False)`,
and bits per character on held-out speeches, comparable with the n-gram and LSTM models. The GPT is
`--architecture llama` (the default: GPT's decoder as it is built today, with rotary positions, RMSNorm and a
SwiGLU MLP: `LlamaForCausalLM`) or `gpt2` (GPT-2's block, learned positions: `GPT2LMHeadModel`); on this text
and budget the first learns about 0.15 bits/char more in the same steps (docs/lm.md). The run folder opens with
`pipeline("text-generation", model=run_dir)`.

Usage:
    hfrepro clm                                             # recipes/configs/clm/default.yaml
    hfrepro clm --budget tiny --output_dir runs/clm-tiny
    hfrepro clm --max_steps 3000 --n_layer 6 --n_embd 256 --output_dir runs/clm-big
    hfrepro clm --tokenizer runs/lstm                       # the LSTM run's tokenizer (as `hfrepro reproduce` does)
    hfrepro clm --architecture gpt2 --output_dir runs/clm-gpt2   # GPT-2's block instead
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/clm.py --output_dir runs/clm-2p
    hfrepro generate --model runs/clm --prompt "ROMEO:" --temperature 0.8
"""

from dataclasses import dataclass, field

from transformers import (
    DataCollatorForLanguageModeling,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainingArguments,
)

from hfrepro import runtime
from hfrepro.cards import write_model_card
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.lm.data import LMDataArguments, block_dataset, lm_tokenizer, token_stream
from hfrepro.lm.scoring import neural_bits
from hfrepro.lm.text import load_corpus
from hfrepro.models import GPT_ARCHITECTURES


@dataclass
class ScriptArguments(LMDataArguments):
    architecture: str = field(default="llama", metadata={
        "help": "llama: rotary positions, RMSNorm, SwiGLU (GPT's decoder as built today) | gpt2: GPT-2's block"})
    n_layer: int = field(default=2, metadata={"help": "transformer blocks"})
    n_embd: int = field(default=128, metadata={"help": "model width"})
    n_head: int = field(default=2, metadata={"help": "attention heads"})
    dropout: float = field(default=0.0, metadata={"help": "dropout: attention only in Llama's block; residual, "
                                                          "embedding and attention in GPT-2's"})


def main(script_args: ScriptArguments, training_args: TrainingArguments, run_args: RunArguments) -> dict:
    if script_args.architecture not in GPT_ARCHITECTURES:
        raise UserError(f"unknown --architecture {script_args.architecture!r}",
                        fix=f"use one of: {', '.join(GPT_ARCHITECTURES)}")
    config = resolved(script_args, training_args, run_args)
    push = hub_request(training_args, default_name="hfrepro-clm")  # fails now, not after training
    threads = runtime.setup(seed=training_args.seed, threads=run_args.threads, precision=run_args.precision)
    runtime.cpu_sane(training_args)
    run = runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite,
                            resume_from_checkpoint=training_args.resume_from_checkpoint, wait=run_args.wait)
    if run.finished:
        print(f"already trained with this config: {run.path}/metrics.json")
        return run.metrics()

    # Data: speeches -> a byte-level BPE trained on the training text -> blocks of `block_size` tokens.
    seed, block = training_args.seed, script_args.block_size
    corpus = load_corpus(script_args.dataset, script_args.text_column)
    train_docs = corpus.documents("train", script_args.train_max_chars, seed=seed)
    tokenizer = lm_tokenizer(script_args, train_docs)
    train = block_dataset(tokenizer, train_docs, block)
    val_docs = corpus.documents("validation", script_args.val_max_chars, seed=seed)
    val = block_dataset(tokenizer, val_docs, block)

    # Model: a GPT of the given size, from scratch, input and output embeddings tied.
    s, ids = script_args, dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                               pad_token_id=tokenizer.pad_token_id)
    if s.architecture == "llama":  # rotary positions, RMSNorm, a SwiGLU MLP 8/3 as wide as the model
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=s.n_embd, intermediate_size=s.n_embd * 8 // 3 // 32 * 32,
            num_hidden_layers=s.n_layer, num_attention_heads=s.n_head, num_key_value_heads=s.n_head,
            max_position_embeddings=block, attention_dropout=s.dropout, tie_word_embeddings=True, **ids))
    else:                          # GPT-2: learned positions, LayerNorm, a GELU MLP 4 times as wide
        model = GPT2LMHeadModel(GPT2Config(
            vocab_size=len(tokenizer), n_positions=block, n_embd=s.n_embd, n_layer=s.n_layer, n_head=s.n_head,
            resid_pdrop=s.dropout, embd_pdrop=s.dropout, attn_pdrop=s.dropout, tie_word_embeddings=True, **ids))

    # Train: the transformers Trainer, next-token prediction.
    trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=val,
                      processing_class=tokenizer, data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
                      callbacks=run.callbacks())
    result = trainer.train(resume_from_checkpoint=run.resume_from)
    eval_loss = trainer.evaluate()["eval_loss"]

    # Evaluate: bits per character on the held-out speeches, each from its start token.
    test_docs = corpus.documents("test", script_args.eval_max_chars, seed=seed)
    test = neural_bits(model, tokenizer, test_docs, block)
    trainer.save_model()  # the run folder is the model's Hub repository
    acc = trainer.accelerator
    metrics = run.finish({
        "model": f"{script_args.architecture} (from scratch)", "parameters": model.num_parameters(),
        "non_embedding_parameters": model.num_parameters(exclude_embeddings=True),
        "steps": trainer.state.global_step, "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "train_loss": result.training_loss, "train_seconds": round(result.metrics["train_runtime"], 2),
        "resumed_from": run.resume_from, "world_size": acc.num_processes, "threads_per_process": threads,
        "train_blocks": len(train), "vocab_size": len(tokenizer), "eval_loss": eval_loss,
        "val_chars_per_token": sum(map(len, val_docs)) / len(token_stream(tokenizer, val_docs)),
        **{f"test_{k}": v for k, v in test.items() if k != "document_bits"}})
    if run.is_main:
        write_card(run.path, model, metrics, config, corpus.name)
        print(f"GPT ({metrics['parameters']:,} parameters, {metrics['steps']} steps, {metrics['tokens_seen']:,} "
              f"tokens): held-out {metrics['test_bits_per_character']:.3f} bits/char, token perplexity "
              f"{metrics['test_perplexity']:.1f} -> {run.path}")
        if push:
            print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


def write_card(folder, model, metrics: dict, config: dict, dataset: str) -> None:
    arch, c = model.config.model_type, model.config
    write_model_card(
        folder, title=f"A GPT ({arch}) pretrained from scratch on {dataset} (hfrepro stage 2)",
        license="apache-2.0", datasets=[dataset], language=["en"], pipeline_tag="text-generation",
        tags=["causal-lm", arch, "from-scratch"], config=config, eval_dataset=dataset, eval_split="test",
        metrics={k: metrics[k] for k in ("parameters", "steps", "tokens_seen", "train_loss", "eval_loss",
                                         "test_bits_per_character", "test_perplexity") if metrics.get(k) is not None},
        eval_metrics=[k for k in ("test_bits_per_character", "test_perplexity") if k in metrics],
        command="hfrepro clm --config config.yaml   # config.yaml: this run's config",
        description=(f"A {model.num_parameters():,}-parameter GPT ({arch}: {c.num_hidden_layers} layers, "
                     f"{c.hidden_size} wide) trained by `recipes/clm.py` for {metrics['steps']} steps "
                     f"({metrics['tokens_seen']:,} tokens) with a byte-level BPE tokenizer trained on the same "
                     "text. Bits per character are measured on held-out documents, each scored from the start "
                     "token (see docs/lm.md)."),
        usage="Teaching and experiments: see how a small GPT learns text. Not a useful general model.",
        limits="Tiny, trained for minutes on one corpus (Early Modern English plays); it produces "
               "Shakespeare-flavoured text of little coherence.")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, TrainingArguments, RunArguments), recipe="clm", argv=argv))


if __name__ == "__main__":
    run_main(cli)
