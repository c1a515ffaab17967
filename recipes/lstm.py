"""An LSTM language model of Shakespeare's plays, trained with the transformers Trainer.

The recurrent step of the perplexity ladder (Zaremba et al. 2014; tied input and output embeddings, Press &
Wolf 2017): the same BPE tokenizer recipe, the same training blocks and the same held-out scoring as
recipes/clm.py, so the LSTM and the GPT differ only in the network. `hfrepro.lm.lstm.LSTMLM` is a
transformers `PreTrainedModel` (its forward returns `.loss` and `.logits`), so the `Trainer` trains it:
AdamW, warm-up then cosine decay to 10% of the peak rate, gradient clipping, checkpoints and resume.
The run folder opens with `AutoModelForCausalLM.from_pretrained(run_dir, trust_remote_code=True)`.

Usage:
    hfrepro lstm                                            # recipes/configs/lstm/default.yaml
    hfrepro lstm --budget tiny --output_dir runs/lstm-tiny
    hfrepro lstm --d_model 512 --n_layers 2 --max_steps 3000 --output_dir runs/lstm-big
    hfrepro lstm --cell rnn_tanh --output_dir runs/rnn            # a vanilla RNN, the same model otherwise
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/lstm.py --output_dir runs/lstm-2p
    hfrepro perplexity --model runs/lstm
"""

from dataclasses import dataclass, field

from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

from hfrepro import runtime
from hfrepro.cards import write_model_card
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.lm.data import LMDataArguments, block_dataset, lm_tokenizer, token_stream
from hfrepro.lm.lstm import CELLS, LSTMLM, LSTMConfig
from hfrepro.lm.scoring import neural_bits
from hfrepro.lm.text import load_corpus


@dataclass
class ScriptArguments(LMDataArguments):
    d_model: int = field(default=256, metadata={"help": "embedding and hidden size"})
    n_layers: int = field(default=1, metadata={"help": "LSTM layers"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the embeddings and the LSTM outputs"})
    cell: str = field(default="lstm", metadata={"help": "the recurrent layer: lstm | gru | rnn_tanh | rnn_relu "
                                                        "(the same model otherwise: the vanishing-gradient chapter)"})


def main(script_args: ScriptArguments, training_args: TrainingArguments, run_args: RunArguments) -> dict:
    if script_args.cell not in CELLS:
        raise UserError(f"unknown --cell {script_args.cell!r}", fix=f"use one of: {', '.join(CELLS)}")
    config = resolved(script_args, training_args, run_args)
    push = hub_request(training_args, default_name="hfrepro-lstm")  # fails now, not after training
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

    # Model: embedding -> LSTM -> the embedding matrix again as the output layer.
    model = LSTMLM(LSTMConfig(vocab_size=len(tokenizer), d_model=script_args.d_model, n_layers=script_args.n_layers,
                              dropout=script_args.dropout, n_positions=block, cell=script_args.cell,
                              bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                              pad_token_id=tokenizer.pad_token_id))

    # Train: the transformers Trainer, next-token prediction (the model shifts the labels, as GPT-2 does).
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
        "model": script_args.cell, "parameters": model.num_parameters(), "steps": trainer.state.global_step,
        "tokens_seen": int(trainer.state.num_input_tokens_seen), "train_loss": result.training_loss,
        "train_seconds": round(result.metrics["train_runtime"], 2), "resumed_from": run.resume_from,
        "world_size": acc.num_processes, "threads_per_process": threads, "train_blocks": len(train),
        "vocab_size": len(tokenizer), "eval_loss": eval_loss,
        "val_chars_per_token": sum(map(len, val_docs)) / len(token_stream(tokenizer, val_docs)),
        **{f"test_{k}": v for k, v in test.items() if k != "document_bits"}})
    if run.is_main:
        write_card(run.path, model, metrics, config, corpus.name)
        print(f"{script_args.cell} ({metrics['parameters']:,} parameters, {metrics['steps']} steps, "
              f"{metrics['tokens_seen']:,} tokens): held-out {metrics['test_bits_per_character']:.3f} bits/char, "
              f"token perplexity {metrics['test_perplexity']:.1f} -> {run.path}")
        if push:
            print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


def write_card(folder, model: LSTMLM, metrics: dict, config: dict, dataset: str) -> None:
    write_model_card(
        folder, title=f"{model.config.cell} language model on {dataset} (hfrepro stage 2)", license="apache-2.0",
        datasets=[dataset], language=["en"], tags=[model.config.cell, "language-model"],
        metrics={k: metrics[k] for k in ("parameters", "steps", "tokens_seen", "eval_loss",
                                         "test_bits_per_character", "test_perplexity") if k in metrics},
        config=config, eval_dataset=dataset, eval_split="test",
        eval_metrics=[k for k in ("test_bits_per_character", "test_perplexity") if k in metrics],
        command="hfrepro lstm --config config.yaml   # config.yaml: this run's config",
        how_to_load=("from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                     "model = AutoModelForCausalLM.from_pretrained(\"path/to/this/folder\", trust_remote_code=True)"
                     "  # lstm.py\ntokenizer = AutoTokenizer.from_pretrained(\"path/to/this/folder\")"),
        description=(f"A {model.num_parameters():,}-parameter {model.config.cell} LM ({model.config.n_layers} "
                     f"layer(s), {model.config.d_model} wide, tied embeddings) trained by `recipes/lstm.py` with the "
                     f"transformers Trainer for {metrics['steps']} steps ({metrics['tokens_seen']:,} tokens). Its "
                     "code is `lstm.py` in this folder (`hfrepro.lm.lstm`): load it with `trust_remote_code=True`. "
                     "Bits per character are measured on held-out documents, each from the start token."),
        usage="Teaching and experiments: compare with the n-gram and GPT models of the same run.",
        limits="Tiny, trained for minutes on one corpus of Early Modern English plays.")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, TrainingArguments, RunArguments), recipe="lstm", argv=argv))


if __name__ == "__main__":
    run_main(cli)
