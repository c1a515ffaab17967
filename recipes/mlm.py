"""A BERT masked language model of Shakespeare's plays: pretrained from scratch with the transformers Trainer.

BERT's objective (Devlin et al. 2019), without next-sentence prediction (RoBERTa showed it is not needed):
`BertForMaskedLM` from a small `BertConfig`, the same byte-level BPE as the GPT (its <mask> takes the space
before it, as RoBERTa's does, so `pipeline("fill-mask")` fills whole words), and
`DataCollatorForLanguageModeling(mlm_probability=0.15)` (80% <mask>, 10% random, 10% unchanged). Reports
masked-token accuracy on held-out speeches (fixed seed) next to the always-the-most-frequent-token baseline.
`--model_name_or_path minilm-l6` continues MLM training from the embedded all-MiniLM-L6-v2 encoder with its
own WordPiece tokenizer (the package ships no MLM head: the head's transform layer starts random).

Usage:
    hfrepro mlm                                             # recipes/configs/mlm/default.yaml
    hfrepro mlm --budget tiny --output_dir runs/mlm-tiny
    hfrepro mlm --model_name_or_path minilm-l6 --learning_rate 1e-4 --output_dir runs/mlm-minilm
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/mlm.py --output_dir runs/mlm-2p
    hfrepro fill-mask --model runs/mlm --text "Good <mask>, my lord."
"""

from dataclasses import dataclass, field

from transformers import BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments

from hfrepro import runtime
from hfrepro.cards import write_model_card
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.lm.data import LMDataArguments, block_dataset, lm_tokenizer
from hfrepro.lm.mlm import mask_absorbs_space, masked_accuracy, most_frequent_token
from hfrepro.lm.text import load_corpus
from hfrepro.models import load_tokenizer, resolve


@dataclass
class ScriptArguments(LMDataArguments):
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "continue MLM from this BERT encoder (e.g. minilm-l6) with its own tokenizer; default: a BERT "
                "from scratch", "aliases": ["--model", "--init_from"]})
    n_layer: int = field(default=2, metadata={"help": "transformer blocks (from scratch)"})
    n_embd: int = field(default=128, metadata={"help": "model width (from scratch)"})
    n_head: int = field(default=2, metadata={"help": "attention heads (from scratch)"})
    dropout: float = field(default=0.0, metadata={"help": "hidden and attention dropout (from scratch)"})
    mlm_probability: float = field(default=0.15, metadata={"help": "fraction of tokens to predict"})


def main(script_args: ScriptArguments, training_args: TrainingArguments, run_args: RunArguments) -> dict:
    config = resolved(script_args, training_args, run_args)
    push = hub_request(training_args, default_name="hfrepro-mlm")  # fails now, not after training
    threads = runtime.setup(seed=training_args.seed, threads=run_args.threads)
    runtime.cpu_sane(training_args)
    run = runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite,
                            resume_from_checkpoint=training_args.resume_from_checkpoint, wait=run_args.wait)
    if run.finished:
        print(f"already trained with this config: {run.path}/metrics.json")
        return run.metrics()

    # Data: speeches -> the tokenizer (trained here, or the encoder's own) -> blocks of `block_size` tokens.
    seed, block, base = training_args.seed, script_args.block_size, script_args.model_name_or_path
    corpus = load_corpus(script_args.dataset, script_args.text_column)
    train_docs = corpus.documents("train", script_args.train_max_chars, seed=seed)
    tokenizer = mask_absorbs_space(load_tokenizer(base) if base else lm_tokenizer(script_args, train_docs))
    train = block_dataset(tokenizer, train_docs, block)
    val = block_dataset(tokenizer, corpus.documents("validation", script_args.val_max_chars, seed=seed), block)

    # Model: a small BERT from scratch (or the embedded encoder, continued).
    if base:
        model = BertForMaskedLM.from_pretrained(resolve(base))
    else:
        model = BertForMaskedLM(BertConfig(
            vocab_size=len(tokenizer), hidden_size=script_args.n_embd, num_hidden_layers=script_args.n_layer,
            num_attention_heads=script_args.n_head, intermediate_size=4 * script_args.n_embd,
            max_position_embeddings=block, type_vocab_size=1, hidden_dropout_prob=script_args.dropout,
            attention_probs_dropout_prob=script_args.dropout, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True))

    # Train: the transformers Trainer; the collator masks 15% of the tokens of every batch afresh.
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=script_args.mlm_probability)
    trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=val,
                      processing_class=tokenizer, data_collator=collator, callbacks=run.callbacks())
    result = trainer.train(resume_from_checkpoint=run.resume_from)
    eval_loss = trainer.evaluate()["eval_loss"]

    # Evaluate: masked-token accuracy on held-out speeches, and the most-frequent-token baseline.
    test_docs = corpus.documents("test", script_args.eval_max_chars, seed=seed)
    test = masked_accuracy(model, tokenizer, test_docs, block, seed=seed, mlm_probability=script_args.mlm_probability,
                           majority_id=most_frequent_token(train, tokenizer))
    trainer.save_model()  # the run folder is the model's Hub repository
    acc = trainer.accelerator
    metrics = run.finish({
        "model": f"bert mlm ({'continued from ' + base if base else 'from scratch'})",
        "parameters": model.num_parameters(), "steps": trainer.state.global_step,
        "tokens_seen": int(trainer.state.num_input_tokens_seen), "train_loss": result.training_loss,
        "train_seconds": round(result.metrics["train_runtime"], 2), "resumed_from": run.resume_from,
        "world_size": acc.num_processes, "threads_per_process": threads, "vocab_size": len(tokenizer),
        "eval_loss": eval_loss, **test})
    if run.is_main:
        write_card(run.path, model, metrics, config, corpus.name, base)
        print(f"{metrics['model']} ({metrics['parameters']:,} parameters, {metrics['steps']} steps): masked-token "
              f"accuracy {metrics['masked_accuracy']:.3f} on {metrics['masked_tokens']:,} held-out tokens "
              f"(most-frequent-token baseline {metrics['majority_baseline_accuracy']:.3f}) -> {run.path}")
        if push:
            print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


def write_card(folder, model, metrics: dict, config: dict, dataset: str, base: str | None) -> None:
    origin = f"continued masked-LM training from `{base}`" if base else "pretrained from scratch"
    write_model_card(
        folder, title=f"BERT masked LM on {dataset}, {origin} (hfrepro stage 2)", license="apache-2.0",
        datasets=[dataset], language=["en"], pipeline_tag="fill-mask", base_model=base,
        tags=["masked-lm", "bert"], config=config, eval_dataset=dataset, eval_split="test",
        eval_metrics=[k for k in ("masked_accuracy",) if k in metrics],
        command="hfrepro mlm --config config.yaml   # config.yaml: this run's config",
        metrics={k: metrics[k] for k in ("parameters", "steps", "tokens_seen", "eval_loss", "masked_accuracy",
                                         "majority_baseline_accuracy") if k in metrics},
        description=(f"A {model.num_parameters():,}-parameter BertForMaskedLM, {origin}, trained by "
                     f"`recipes/mlm.py` for {metrics['steps']} steps with 15% of tokens masked. Masked-token "
                     "accuracy is measured on held-out documents with every chosen token masked."),
        usage="Teaching and experiments: `pipeline('fill-mask', model=this_folder)`.",
        limits="Tiny and trained for minutes on one corpus of Early Modern English plays.")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, TrainingArguments, RunArguments), recipe="mlm", argv=argv))


if __name__ == "__main__":
    run_main(cli)
