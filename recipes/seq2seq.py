"""Translation: a GRU encoder-decoder, the same with Bahdanau attention, and a small Transformer, scored with BLEU.

The three models are trained on the same pairs, with the same tokenizer, number of updates, batch size,
learning-rate schedule and gradient clipping, each by the transformers `Trainer`, then translate the whole
held-out test split and are scored with BLEU and chrF (sacrebleu) overall and by source-sentence length: the
figure of Bahdanau, Cho and Bengio (2014), where the plain encoder-decoder falls off on long sentences and
the attention model holds up. Stage 3 of `hfrepro reproduce` (claim `s2s-attention-long`).

Usage:
    python recipes/seq2seq.py                                # recipes/configs/seq2seq/default.yaml: 1,000 updates
    hfrepro seq2seq --budget tiny --output_dir runs/s2s-tiny  # seconds
    hfrepro seq2seq --max_steps 2000 --num_beams 4 --dropout 0.1 --warmup_steps 100 --save_steps 500 \\
        --output_dir runs/seq2seq-2000                      # the 2,000-update table of docs/seq2seq.md
    hfrepro seq2seq --arch rnn_attention --output_dir runs/s2s-att      # rnn | rnn_attention | transformer | all
    hfrepro seq2seq --dataset lo-help-en-fr --output_dir runs/seq2seq-fr
    hfrepro seq2seq --dataset my_pairs.tsv --source_lang en --target_lang de --output_dir runs/mine
    hfrepro seq2seq --accelerate_config cpu_2proc             # = accelerate launch ... recipes/seq2seq.py
    hfrepro translate --model runs/seq2seq/rnn_attention "Choose Format - Character."

The run folder holds the comparison (config.yaml, metrics.json, results.md, bleu_by_length.png,
attention.png), the shared tokenizer (tokenizer/), and one run folder per architecture (rnn/,
rnn_attention/, transformer/): the model's Hugging Face repository (model, tokenizer, card) with its
config.yaml, metrics.json, log.jsonl, the Trainer's checkpoint-N/ and the test translations (test.tsv,
src.txt/ref.txt/hyp.txt for `sacrebleu ref.txt -i hyp.txt -tok char`). Interrupted? Run the same command
again: finished architectures are reused, an unfinished one resumes from its last checkpoint.
"""

import dataclasses
import time
from dataclasses import dataclass, field

from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

from hfrepro import runtime
from hfrepro.cards import write_model_card
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.fsutil import atomic_dir
from hfrepro.hub import hub_request, push_folder
from hfrepro.seq2seq import report, scoring
from hfrepro.seq2seq.data import (
    EMBEDDED,
    LONG_FROM,
    features,
    length_grouped_order,
    load_pairs,
    select_subset,
    select_test,
    train_tokenizer,
)
from hfrepro.seq2seq.decode import ARCHS, attention_map, load_model, source_dependence, translate
from hfrepro.seq2seq.rnn import ATTENTION_READS, GRUSeq2Seq, GRUSeq2SeqConfig


@dataclass
class ScriptArguments:
    arch: str = field(default="all", metadata={"help": "rnn | rnn_attention | transformer | all, or a comma list"})
    dataset: str = field(default="lo-help-en-ko", metadata={
        "help": "lo-help-en-ko, lo-help-en-fr, or a .tsv/.csv/.jsonl file of pairs (columns source/target)"})
    source_lang: str | None = field(default=None, metadata={"help": "source column/language (default: from data)"})
    target_lang: str | None = field(default=None, metadata={"help": "target column/language (default: from data)"})
    vocab_size: int = field(default=3000, metadata={"help": "shared BPE vocabulary for both languages"})
    tokenizer_examples: int = field(default=0, metadata={"help": "train the tokenizer on this many pairs (0: all)"})
    max_train_tokens: int = field(default=64, metadata={
        "help": "drop training pairs longer than this (tokens, either side); 0 keeps all. Never applied to test"})
    max_train_examples: int = field(default=0, metadata={"help": "use at most this many training pairs (0: all)"})
    embed_dim: int = field(default=64, metadata={"help": "GRU models: word embedding size"})
    hidden_size: int = field(default=128, metadata={"help": "GRU models: hidden size (encoder: per direction)"})
    d_model: int = field(default=128, metadata={"help": "Transformer: model width"})
    layers: int = field(default=2, metadata={"help": "Transformer: encoder and decoder layers (each)"})
    heads: int = field(default=4, metadata={"help": "Transformer: attention heads"})
    ffn_dim: int = field(default=256, metadata={"help": "Transformer: feed-forward size"})
    transformer_style: str = field(default="marian", metadata={
        "help": "marian: post-LayerNorm MarianMT (default); pre_ln: pre-LayerNorm encoder-decoder (M2M100Config)"})
    context_size: int = field(default=0, metadata={
        "help": "GRU models: size of the fixed vector c, the plain model's only view of the source (0: the encoder's "
                "final states themselves, 2 x hidden_size numbers; d: squeezed to d numbers)"})
    sweep_context_sizes: str = field(default="", metadata={
        "help": "also train both GRU models with each of these fixed-vector sizes (comma list, e.g. 8): the sweep "
                "that shows where attention's advantage lives"})
    attention_read: str = field(default="after", metadata={
        "help": "GRU attention model: read the encoder's states after the decoder's step (Luong, one call per "
                "target) or before it, fed into the GRU (Bahdanau: the state knows what it read; a step at a time)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout of every model"})
    transformer_learning_rate: float = field(default=2e-3, metadata={
        "help": "peak learning rate of the Transformer (--learning_rate is the GRU models')"})
    transformer_max_steps: int = field(default=0, metadata={
        "help": "updates of the Transformer (0: --max_steps, as the GRU models)"})
    sweep_max_steps: int = field(default=0, metadata={
        "help": "updates of the sweep's GRU models (0: --max_steps, as the full-size ones)"})
    num_beams: int = field(default=1, metadata={"help": "beam size for the test-set translations (1: greedy)"})
    also_greedy: bool = field(default=False, metadata={"help": "also score greedy decoding (when num_beams > 1)"})
    no_repeat_ngram_size: int = field(default=0, metadata={
        "help": "test translations never repeat an n-gram of output tokens (a loop guard, transformers' "
                "no_repeat_ngram_size; 0: off)"})
    max_eval_examples: int = field(default=0, metadata={"help": "score a seeded subset of the test split (0: all)"})
    max_val_examples: int = field(default=400, metadata={
        "help": "validation pairs for the loss curve (every --eval_steps updates; 0: all)"})
    eval_batch_size: int = field(default=64, metadata={"help": "sentences translated at once"})
    bleu_tokenize: str | None = field(default=None, metadata={
        "help": "sacrebleu BLEU tokenizer (default: char for ko/ja, zh for zh, else 13a)"})
    heatmap_text: str | None = field(default=None, metadata={
        "help": "sentence for the attention heat map (default: the first test sentence of 10-20 words)"})


def main(script_args: ScriptArguments, training_args: TrainingArguments, run_args: RunArguments) -> dict:
    models = check_arguments(script_args, training_args)
    config = resolved(script_args, training_args, run_args)
    push = hub_request(training_args, default_name="hfrepro-seq2seq")  # fails now, not after training
    runtime.setup(seed=training_args.seed, threads=run_args.threads, precision=run_args.precision)
    runtime.cpu_sane(training_args)
    run = runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite, wait=run_args.wait)
    if run.finished:
        print(f"already trained and scored with this config: {run.path}/results.md")
        return run.metrics()

    # Data: parallel pairs split train/validation/test; one byte-level BPE vocabulary for both languages,
    # trained on the training split; training pairs of at most `max_train_tokens` tokens a side; a fixed part of
    # the validation split for the loss curve.
    pairs = load_pairs(script_args.dataset, script_args.source_lang, script_args.target_lang)
    tokenizer = shared_tokenizer(run, pairs, script_args)
    train_split = pairs.splits["train"]
    if script_args.max_train_examples:
        train_split = train_split.select(range(min(script_args.max_train_examples, len(train_split))))
    train = features(tokenizer, train_split, script_args.max_train_tokens)
    if len(train) == 0:
        raise UserError(f"no training pair is at most {script_args.max_train_tokens} tokens long",
                        fix="raise --max_train_tokens (or 0 to keep all)")
    val = features(tokenizer, select_subset(pairs.splits["validation"], script_args.max_val_examples))
    print(f"[seq2seq] {pairs.name} {pairs.source_lang}->{pairs.target_lang}: {len(train):,} training pairs "
          f"(of {len(train_split):,}; at most {script_args.max_train_tokens or 'any'} tokens a side), "
          f"{len(pairs.splits['test']):,} test pairs, vocabulary {len(tokenizer):,}")

    # Each model: model -> Trainer -> test translations and scores, in its own run folder. The GRU models are
    # trained once with the fixed vector of `context_size`, then again with each size of the sweep.
    results = {name: train_and_score(name, arch, size, pairs, tokenizer, train, val, config, script_args,
                                     training_args, run_args)
               for name, (arch, size) in models.items()}

    # The comparison: BLEU/chrF by source length with paired bootstrap intervals, the sweep of the fixed vector,
    # the loss curves, the attention heat map -> results.md.
    if not run.is_main:
        return run.finish()
    metrics = run.finish(compare(run.path, results, pairs, tokenizer, script_args))
    for name in models:
        print(f"{name:18s} BLEU {results[name]['bleu']:6.2f}  chrF {results[name]['chrf']:6.2f}")
    print(f"results: {run.path}/results.md, {run.path}/bleu_by_length.png")
    if push:  # one Hub repository per model: <id> for one model, <id>-<name> for several
        for name in models:
            req = push if len(models) == 1 else dataclasses.replace(push, repo_id=f"{push.repo_id}-{name}")
            print(f"pushed to {req.repo_id}: {push_folder(run.path / name, req)}")
    return metrics


def check_arguments(script_args: ScriptArguments, training_args: TrainingArguments) -> dict[str, tuple[str, int]]:
    """The models to train, {folder name: (arch, fixed-vector size)}; every argument mistake found here stops the run
    before anything is written."""
    names = [a.strip() for a in script_args.arch.split(",") if a.strip()]
    names = list(ARCHS) if names == ["all"] else names
    bad = [a for a in names if a not in ARCHS]
    if bad or not names:
        raise UserError(f"unknown --arch {', '.join(bad) or script_args.arch!r}",
                        fix=f"use {' | '.join(ARCHS)} | all, or a comma list")
    archs = [a for a in ARCHS if a in names]
    sizes = sweep_sizes(script_args)
    if script_args.bleu_tokenize:
        scoring.check_tokenize(script_args.bleu_tokenize)
    if script_args.transformer_style not in ("pre_ln", "marian"):
        raise UserError(f"unknown --transformer_style {script_args.transformer_style!r}", fix="use pre_ln or marian")
    if script_args.attention_read not in ATTENTION_READS:
        raise UserError(f"unknown --attention_read {script_args.attention_read!r}", fix="use after or before")
    for name, value in (("max_steps", training_args.max_steps), ("vocab_size", script_args.vocab_size),
                        ("per_device_train_batch_size", training_args.per_device_train_batch_size)):
        if value <= 0:
            raise UserError(f"--{name} must be positive, got {value}")
    for name, zero in (("transformer_max_steps", "as --max_steps"), ("sweep_max_steps", "as --max_steps"),
                       ("no_repeat_ngram_size", "off")):
        if (value := getattr(script_args, name)) < 0:
            raise UserError(f"--{name} must be 0 ({zero}) or positive, got {value}")
    models = {a: (a, script_args.context_size) for a in archs}
    models.update({sweep_name(a, d): (a, d) for d in sizes for a in archs if a != "transformer"})
    resume = training_args.resume_from_checkpoint
    if resume not in (None, "", "true", "True", "false", "False") and len(models) > 1:
        raise UserError(f"--resume_from_checkpoint {resume}: a checkpoint belongs to one model",
                        fix="add --arch <that architecture> (and no --sweep_context_sizes), or pass true (each model "
                            "resumes from its last checkpoint)")
    return models


def sweep_sizes(script_args: ScriptArguments) -> list[int]:
    """The fixed-vector sizes of the sweep, smallest first."""
    try:
        sizes = sorted({int(x) for x in script_args.sweep_context_sizes.split(",") if x.strip()})
    except ValueError:
        sizes = [0]
    if any(x <= 0 for x in sizes) or script_args.context_size < 0:
        raise UserError(f"--sweep_context_sizes {script_args.sweep_context_sizes!r} / --context_size "
                        f"{script_args.context_size}: fixed-vector sizes are positive whole numbers",
                        fix="e.g. --sweep_context_sizes 32,8 (and --context_size 0 for the encoder's final states)")
    return sizes


def sweep_name(arch: str, size: int) -> str:
    """The folder of a GRU model of the sweep: rnn-c8 is the plain model whose fixed vector holds 8 numbers."""
    return f"{arch}-c{size}"


def shared_tokenizer(run: runtime.Run, pairs, script_args: ScriptArguments):
    """The run's tokenizer: trained once (main process) into tokenizer/, and read back by every process."""
    folder = run.path / "tokenizer"
    if run.is_main and not (folder / "tokenizer.json").is_file():
        tokenizer = train_tokenizer(pairs, script_args.vocab_size, script_args.tokenizer_examples)
        with atomic_dir(folder) as tmp:
            tokenizer.save_pretrained(tmp)
    runtime.wait_for_everyone()
    return AutoTokenizer.from_pretrained(folder)


# --- one architecture -----------------------------------------------------------------------------------------

RNN_ONLY = ("embed_dim", "hidden_size", "learning_rate", "context_size", "attention_read")
TRANSFORMER_ONLY = ("d_model", "layers", "heads", "ffn_dim", "transformer_style", "transformer_learning_rate",
                    "transformer_max_steps")


def train_and_score(name: str, arch: str, size: int, pairs, tokenizer, train, val, config: dict,
                    script_args: ScriptArguments, training_args: TrainingArguments, run_args: RunArguments) -> dict:
    """Build `arch` (a GRU model with a fixed vector of `size` numbers), train it with the Trainer in
    <output_dir>/<name>, translate and score the test split."""
    # The same Trainer settings for every GRU model. The Transformer has its own peak learning rate (and may have
    # its own number of updates), and its own batches: the GRU decoders run over their batch's longest target, so
    # their batches hold pairs of similar length (shuffled length-grouped batches, which the Trainer reads in
    # sequence); the Transformer's are drawn at random (with transformers' length-grouped sampler it never
    # learned to use its source).
    steps = training_args.max_steps
    if arch == "transformer":
        lr, sampling, data = script_args.transformer_learning_rate, "random", train
        steps = script_args.transformer_max_steps or steps
    else:
        if name == sweep_name(arch, size):
            steps = script_args.sweep_max_steps or steps
        batch = (training_args.per_device_train_batch_size * training_args.world_size
                 * training_args.gradient_accumulation_steps)  # the pairs of one update
        order = length_grouped_order([len(x) + len(y) for x, y in zip(train["input_ids"], train["labels"])],
                                     batch, steps, training_args.seed)
        lr, sampling, data = training_args.learning_rate, "sequential", train.select(order)
    args = dataclasses.replace(training_args, output_dir=f"{training_args.output_dir}/{name}", learning_rate=lr,
                               train_sampling_strategy=sampling, max_steps=steps)
    own = {k: v for k, v in config.items() if k not in (RNN_ONLY if arch == "transformer" else TRANSFORMER_ONLY)
           and k not in ("sweep_context_sizes", "sweep_max_steps")}  # the config that replays this one model
    own.update(arch=arch, **({} if arch == "transformer" else {"context_size": size, "max_steps": steps}))
    run = runtime.Run.begin(args.output_dir, own, resume_from_checkpoint=training_args.resume_from_checkpoint,
                            wait=run_args.wait)
    if run.finished:
        print(f"[seq2seq] {name}: already trained and scored with this config in {run.path}, reusing it")
        return run.metrics()

    model = build_model(arch, tokenizer, script_args, seed=args.seed, context_size=size)
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=val, processing_class=tokenizer,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
                      callbacks=run.callbacks())
    result = trainer.train(resume_from_checkpoint=run.resume_from)
    trainer.save_model()  # the model's run folder is its Hub repository

    acc, state = trainer.accelerator, trainer.state
    metrics = {"arch": arch, "context_size": model_context_size(model), "world_size": acc.num_processes,
               "parameters": trainable_parameters(model), "steps": state.global_step,
               "batch_size": args.per_device_train_batch_size * acc.num_processes, "train_pairs": len(train),
               "train_loss": result.training_loss, "train_seconds": round(result.metrics["train_runtime"], 1),
               "source_tokens_seen": int(state.num_input_tokens_seen), **loss_curves(state.log_history)}
    metrics["train_source_tokens_per_second"] = round(metrics["source_tokens_seen"] / max(
        metrics["train_seconds"], 1e-9), 1)
    if run.is_main:  # the main process translates the test split while the others wait
        metrics.update(score_test_split(model.eval(), tokenizer, pairs, script_args, run.path, name, args))
    metrics = run.finish(metrics)
    if run.is_main:
        write_card(run.path, arch, pairs, metrics, run.config)
    runtime.wait_for_everyone()
    return metrics


def loss_curves(log_history: list[dict]) -> dict:
    """The training loss and the validation loss (every eval_steps updates) from the Trainer's log."""
    train = [(r["step"], round(r["loss"], 4)) for r in log_history if "loss" in r]
    val = [(r["step"], round(r["eval_loss"], 4)) for r in log_history if "eval_loss" in r]
    return {"train_curve": train, "val_curve": val, "val_loss": val[-1][1] if val else None}


def model_context_size(model) -> int | None:
    """The fixed vector's size of a GRU model (None for the Transformer)."""
    cfg = model.config
    if getattr(cfg, "model_type", "") != "hfrepro-gru-seq2seq":
        return None
    return cfg.context_size or 2 * cfg.hidden_size


def build_model(arch: str, tokenizer, script_args: ScriptArguments, seed: int, context_size: int = 0):
    """rnn / rnn_attention: hfrepro's GRU encoder-decoder (hfrepro/seq2seq/rnn.py), the second the first plus an
    attention read of every encoder state, both with a fixed vector of `context_size` numbers (0: the encoder's
    final states); transformer: a MarianMT (post-LayerNorm) or M2M100 (pre-LayerNorm) model from its config."""
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, MarianConfig, MarianMTModel

    torch.manual_seed(seed)  # the same initialisation for the same seed, whatever ran before
    s = script_args
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.bos_token_id)
    if arch in ("rnn", "rnn_attention"):
        return GRUSeq2Seq(GRUSeq2SeqConfig(vocab_size=len(tokenizer), embed_dim=s.embed_dim, hidden_size=s.hidden_size,
                                           attention=arch == "rnn_attention", context_size=context_size or None,
                                           attention_read=s.attention_read, dropout=s.dropout, **ids))
    common = dict(vocab_size=len(tokenizer), d_model=s.d_model, encoder_layers=s.layers, decoder_layers=s.layers,
                  encoder_attention_heads=s.heads, decoder_attention_heads=s.heads, encoder_ffn_dim=s.ffn_dim,
                  decoder_ffn_dim=s.ffn_dim, max_position_embeddings=512, dropout=s.dropout, scale_embedding=True,
                  **ids)
    if s.transformer_style == "marian":  # post-LayerNorm, as in Vaswani et al. and MarianMT
        model = MarianMTModel(MarianConfig(**common, forced_eos_token_id=None))
    else:  # pre-LayerNorm (M2M100, the BART family): an option, not the default (docs/seq2seq.md)
        model = M2M100ForConditionalGeneration(M2M100Config(**common, attention_dropout=s.dropout,
                                                            encoder_layerdrop=0.0, decoder_layerdrop=0.0))
    # Their forward takes **kwargs, so the Trainer believes they divide their loss by its token count
    # (num_items_in_batch) and multiplies it by the number of processes; they return a mean (transformers 5.23),
    # so with 2 processes the loss and the gradients doubled. The GRU model does divide (rnn.py).
    model.accepts_loss_kwargs = False
    return model


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


def score_test_split(model, tokenizer, pairs, script_args: ScriptArguments, folder, arch: str,
                     args: TrainingArguments) -> dict:
    """Translate the test split; BLEU/chrF overall and by source length; the source-dependence check; write the
    translations (test.tsv, src.txt/ref.txt/hyp.txt) into the arch's run folder."""
    tokenize = script_args.bleu_tokenize or scoring.default_tokenize(pairs.target_lang)
    test = select_test(pairs, script_args.max_eval_examples, args.seed)
    src, ref = [scoring.one_line(x) for x in test["source"]], [scoring.one_line(x) for x in test["target"]]
    beams, progress = script_args.num_beams, not args.disable_tqdm
    t0 = time.time()
    hyp = [scoring.one_line(x) for x in translate(model, tokenizer, src, num_beams=beams, progress=progress,
                                                  batch_size=script_args.eval_batch_size,
                                                  no_repeat_ngram_size=script_args.no_repeat_ngram_size,
                                                  desc=f"{arch}: translating test (beam {beams})")]
    seconds = time.time() - t0
    s = scoring.score(hyp, ref, tokenize)
    m = {"test_sentences": len(src), "bleu_tokenize": tokenize, "num_beams": beams,
         "no_repeat_ngram_size": script_args.no_repeat_ngram_size,
         "translate_seconds": round(seconds, 1),
         "translate_sentences_per_second": round(len(src) / max(seconds, 1e-9), 1),
         **{k: s[k] for k in ("bleu", "chrf", "bleu_signature", "chrf_signature", "bleu_string", "brevity_penalty")},
         "by_length": scoring.by_length(src, hyp, ref, tokenize)}
    if script_args.also_greedy and beams > 1:
        greedy = translate(model, tokenizer, src, num_beams=1, batch_size=script_args.eval_batch_size,
                           no_repeat_ngram_size=script_args.no_repeat_ngram_size, progress=progress,
                           desc=f"{arch}: translating test (greedy)")
        g = scoring.score(greedy, ref, tokenize)
        m.update(greedy_bleu=g["bleu"], greedy_chrf=g["chrf"])
    m.update(source_dependence(model, tokenizer, test))
    scoring.write_outputs(folder, src, ref, hyp)
    print(f"[seq2seq] {arch}: {s['bleu_string']}")
    print(f"[seq2seq] {arch}: chrF2 = {s['chrf']:.2f}  ({s['chrf_signature']})")
    return m


# --- the comparison -------------------------------------------------------------------------------------------

def compare(root, results: dict, pairs, tokenizer, script_args: ScriptArguments) -> dict:
    """BLEU/chrF by source length with attention − plain and its paired bootstrap interval, the sweep of the fixed
    vector (long and shorter sentences), attention − plain on long sentences at the smallest fixed vector, the
    attention heat map of one sentence; results.md and the plots. Returns the comparison's metrics."""
    import numpy as np

    tokenize = next(iter(results.values()))["bleu_tokenize"]
    both = {"rnn", "rnn_attention"} <= set(results)
    gaps = report.bucket_gaps(root, "rnn", "rnn_attention", tokenize) if both else None
    sweep = report.sweep_rows(root, results, tokenize, LONG_FROM)
    sizes = [d for d in sweep_sizes(script_args) if sweep_name("rnn", d) in results]
    check = None
    if both and sizes:
        rng = np.random.default_rng(0)
        small = report.long_gaps(root, sweep_name("rnn", sizes[0]), sweep_name("rnn_attention", sizes[0]),
                                 tokenize, LONG_FROM, rng)
        full = report.long_gaps(root, "rnn", "rnn_attention", tokenize, LONG_FROM, rng)
        if small:
            check = {"size": sizes[0], "full_size": results["rnn"]["context_size"], **report.summarize(small)}
            if full:
                check.update(full_bleu=report.summarize(full)["bleu"], full_chrf=report.summarize(full)["chrf"])
    heat = None
    if "rnn_attention" in results:
        text = script_args.heatmap_text or report.default_heatmap_text(report.read_outputs(root / "rnn_attention")[0])
        model, tok = load_model(root / "rnn_attention")
        src_tokens, out_tokens, weights, translation = attention_map(model, tok, text)
        report.plot_attention(src_tokens, out_tokens, weights, root / "attention.png",
                              f"Attention weights (GRU + attention)\n{text[:90]}")
        heat = {"source": text, "translation": translation, "png": "attention.png"}
    return report.write_results(root, results, pairs, len(tokenizer), gaps, sweep, check, heat, LONG_FROM)


def write_card(folder, arch: str, pairs, metrics: dict, config: dict) -> None:
    order = report.attention_order(config.get("attention_read", "after"))
    what = {"rnn": "a GRU encoder-decoder without attention (the whole source in one vector; Cho et al. 2014)",
            "rnn_attention": f"a GRU encoder-decoder with attention over every encoder state (bilinear score), {order}",
            "transformer": "a small Transformer encoder-decoder (MarianMT config, or M2M100 with --transformer_style "
                           "pre_ln) trained from scratch"}[arch]
    src, tgt, embedded = pairs.source_lang, pairs.target_lang, pairs.name in EMBEDDED
    card_metrics = {"test BLEU": metrics["bleu"], "test chrF": metrics["chrf"],
                    "BLEU signature": metrics["bleu_signature"], "test sentences": metrics["test_sentences"],
                    "parameters (trainable)": metrics["parameters"], "training updates": metrics["steps"],
                    "training time (s)": metrics["train_seconds"]}
    card_metrics.update({f"BLEU, source {r['bucket']} words (n={r['sentences']})": r["bleu"]
                         for r in metrics["by_length"] if r["bleu"] is not None})
    loader = ("from hfrepro.seq2seq.decode import load_model, translate  # needs hfrepro installed\n"
              "model, tok = load_model(path)\n"
              "print(translate(model, tok, [\"Choose Format - Character.\"], num_beams=4))")
    write_model_card(
        folder, title=f"hfrepro seq2seq {arch}: {src}->{tgt} on {pairs.name}", license="apache-2.0",
        datasets=[pairs.name] if embedded else [], language=[src, tgt], pipeline_tag="translation",
        tags=["translation", "seq2seq", arch], library_name="transformers",
        description=(f"This is {what}, trained from scratch by hfrepro's stage 3 recipe (`recipes/seq2seq.py`) on "
                     f"{metrics['train_pairs']:,} {src}->{tgt} pairs of `{pairs.name}`"
                     + (" (LibreOffice help texts, MPL-2.0)" if embedded else "") + ". "
                     f"{metrics['parameters']:,} trainable parameters, {metrics['steps']} updates of "
                     f"{metrics['batch_size']} pairs. Scores are on the held-out test split, BLEU and chrF computed "
                     "by sacrebleu through hfrepro's own `evaluate` module (signatures below).\n\n"
                     "From the command line:\n\n"
                     f"```bash\nhfrepro translate --model PATH_TO_THIS_FOLDER \"Choose Format - Character.\"\n```"),
        metrics=card_metrics, eval_metrics=["test BLEU", "test chrF"],
        eval_dataset=pairs.name if embedded else None, eval_split="test", task="translation",
        config=config, how_to_load=loader,
        command="hfrepro seq2seq --config config.yaml --output_dir RUN   # config.yaml: this model's run config",
        usage="Teaching and reproduction: it shows what a small model of this architecture learns in minutes of "
              "CPU. It is not a usable translation system.",
        limits="Trained for minutes on one domain (software help text); long or out-of-domain sentences are "
               "translated badly. " + ("Loading needs the hfrepro package installed (its own model class, no "
                                        "remote code)." if arch != "transformer" else ""))


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, TrainingArguments, RunArguments), recipe="seq2seq", argv=argv))


if __name__ == "__main__":
    run_main(cli)
