"""Train and evaluate the three translation models on the same data, tokenizer and number of updates.

    runs/seq2seq/                 the run: config.yaml (shared settings), metrics.json (the comparison),
        tokenizer/                one BPE vocabulary for both languages, trained on the training split
        rnn/ rnn_attention/ transformer/
            config.yaml metrics.json log.jsonl checkpoints/
            model/                safetensors + config + tokenizer + README.md card (a Hub repo)
            test.tsv              source, reference, hypothesis for every test sentence
            hyp.txt ref.txt       the same, as plain files for `sacrebleu ref.txt -i hyp.txt`
        results.md                the results table, BLEU/chrF by source length, the claim check
        bleu_by_length.png attention.png

The GRU models train in a short hand-written loop (accelerate handles devices and processes; resumable via
hfrepro.training.save/load_loop_checkpoint); the Transformer trains with transformers' Seq2SeqTrainer.
Both use Adam(W) without weight decay, the same linear warm-up/decay schedule, gradient clipping, batch
size and number of steps. The GRU loop groups pairs of similar length into a batch; the Trainer samples at
random (its length-grouped sampler stopped the Transformer from learning to use its source, see train_transformer).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from hfrepro.errors import UserError
from hfrepro.seq2seq.decode import ARCHS


@dataclass
class Seq2SeqArguments:
    arch: str = field(default="all", metadata={"help": "rnn | rnn_attention | transformer | all, or a comma list"})
    dataset: str = field(default="lo-help-en-ko", metadata={
        "help": "lo-help-en-ko, lo-help-en-fr, or a .tsv/.csv/.jsonl file of pairs (columns source/target)"})
    source_lang: str | None = field(default=None, metadata={"help": "source column/language (default: from data)"})
    target_lang: str | None = field(default=None, metadata={"help": "target column/language (default: from data)"})
    output_dir: str = field(default="runs/seq2seq", metadata={"help": "run folder (one sub-folder per arch)"})
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
    dropout: float = field(default=0.1)
    max_steps: int = field(default=2000, metadata={"help": "optimizer updates, the same for every arch"})
    batch_size: int = field(default=32, metadata={"help": "pairs per update (per process)"})
    learning_rate: float = field(default=6e-3, metadata={"help": "peak learning rate of the GRU models"})
    transformer_learning_rate: float = field(default=2e-3, metadata={"help": "peak learning rate of the Transformer"})
    warmup_steps: int = field(default=100)
    max_grad_norm: float = field(default=1.0)
    save_steps: int = field(default=500, metadata={"help": "checkpoint every N updates (resume picks the last)"})
    logging_steps: int = field(default=50)
    num_beams: int = field(default=4, metadata={"help": "beam size for the test-set translations (1: greedy)"})
    also_greedy: bool = field(default=True, metadata={"help": "also score greedy decoding (when num_beams > 1)"})
    max_eval_examples: int = field(default=0, metadata={"help": "score a seeded subset of the test split (0: all)"})
    eval_batch_size: int = field(default=64)
    bleu_tokenize: str | None = field(default=None, metadata={
        "help": "sacrebleu BLEU tokenizer (default: char for ko/ja, zh for zh, else 13a)"})
    heatmap_text: str | None = field(default=None, metadata={
        "help": "sentence for the attention heat map (default: the first test sentence of 10-20 words)"})
    seed: int = field(default=0)
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: cores / processes)"})
    overwrite: bool = field(default=False, metadata={"help": "start afresh if output_dir holds another run"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})


def parse_archs(spec: str) -> list[str]:
    names = [a.strip() for a in spec.split(",") if a.strip()]
    if names == ["all"]:
        return list(ARCHS)
    bad = [a for a in names if a not in ARCHS]
    if bad or not names:
        raise UserError(f"unknown --arch {', '.join(bad) or spec!r}", fix=f"use {' | '.join(ARCHS)} | all, or a comma list")
    return [a for a in ARCHS if a in names]


RNN_KEYS = ("embed_dim", "hidden_size", "learning_rate")
TRANSFORMER_KEYS = ("d_model", "layers", "heads", "ffn_dim", "transformer_learning_rate", "transformer_style")
NOT_SAVED = ("arch", "progress", "threads")


def shared_config(args: Seq2SeqArguments) -> dict:
    """The run folder's config: data, tokenizer, training and evaluation settings common to every arch."""
    from hfrepro.config import resolved
    return {k: v for k, v in resolved(args).items() if k not in NOT_SAVED + RNN_KEYS + TRANSFORMER_KEYS}


def arch_config(args: Seq2SeqArguments, arch: str) -> dict:
    """An arch folder's config: the shared settings plus that arch's own (changing the Transformer's width
    retrains the Transformer only)."""
    from hfrepro.config import resolved
    own = TRANSFORMER_KEYS if arch == "transformer" else RNN_KEYS
    return {**shared_config(args), "arch": arch, **{k: v for k, v in resolved(args).items() if k in own}}


# --- models -----------------------------------------------------------------------------------------------

def build_model(arch: str, tok, args: Seq2SeqArguments):
    import torch

    torch.manual_seed(args.seed)  # the same initialisation for the same seed, whatever ran before
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               decoder_start_token_id=tok.bos_token_id)
    if arch in ("rnn", "rnn_attention"):
        from hfrepro.seq2seq.rnn import GRUSeq2Seq, GRUSeq2SeqConfig
        cfg = GRUSeq2SeqConfig(vocab_size=len(tok), embed_dim=args.embed_dim, hidden_size=args.hidden_size,
                               attention_dim=args.hidden_size, attention=arch == "rnn_attention",
                               dropout=args.dropout, **ids)
        return GRUSeq2Seq(cfg)
    common = dict(vocab_size=len(tok), d_model=args.d_model, encoder_layers=args.layers, decoder_layers=args.layers,
                  encoder_attention_heads=args.heads, decoder_attention_heads=args.heads, encoder_ffn_dim=args.ffn_dim,
                  decoder_ffn_dim=args.ffn_dim, max_position_embeddings=512, dropout=args.dropout,
                  scale_embedding=True, **ids)
    if args.transformer_style == "marian":  # post-LayerNorm, as in Vaswani et al. and MarianMT
        from transformers import MarianConfig, MarianMTModel
        return MarianMTModel(MarianConfig(**common, forced_eos_token_id=None))
    if args.transformer_style != "pre_ln":
        raise UserError(f"unknown --transformer_style {args.transformer_style!r}", fix="use pre_ln or marian")
    # pre-LayerNorm (M2M100, the BART family). In a hand loop it started using its source sooner than Marian
    # here, but under Seq2SeqTrainer it trained more slowly (docs/seq2seq.md): an option, not the default
    from transformers import M2M100Config, M2M100ForConditionalGeneration
    return M2M100ForConditionalGeneration(M2M100Config(**common, attention_dropout=args.dropout,
                                                       encoder_layerdrop=0.0, decoder_layerdrop=0.0))


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


# --- training: the GRU models (hand-written loop) ---------------------------------------------------------

def batch_plan(lengths: list[int], batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Index lists for `steps` batches: each epoch shuffled, then sorted by length inside mega-batches of 50
    batches and cut, so that a batch holds pairs of similar length (LengthGroupedSampler's idea)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    plan: list[list[int]] = []
    lengths_np = np.asarray(lengths)
    while len(plan) < steps:
        perm = rng.permutation(len(lengths))
        mega = batch_size * 50
        batches = []
        for s in range(0, len(perm), mega):
            chunk = perm[s:s + mega]
            chunk = chunk[np.argsort(-lengths_np[chunk], kind="stable")]
            batches += [chunk[i:i + batch_size].tolist() for i in range(0, len(chunk), batch_size)]
        plan += [batches[i] for i in rng.permutation(len(batches))]
    return plan[:steps]


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up then linear decay to 0 (transformers' `linear` schedule)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def train_rnn(model, train, tok, args: Seq2SeqArguments, run) -> dict:
    import torch
    from accelerate import Accelerator
    from tqdm.auto import tqdm
    from transformers import DataCollatorForSeq2Seq

    from hfrepro.training import check_finite, load_loop_checkpoint, save_loop_checkpoint

    acc = Accelerator()
    collate = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    opt = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    state = load_loop_checkpoint(run.checkpoints, model, opt) or {}
    start, tokens, seconds = state.get("step", 0), state.get("tokens_seen", 0), state.get("train_seconds", 0.0)
    if start:
        acc.print(f"[seq2seq] resuming {run.path.name} from step {start}")
    model, opt = acc.prepare(model, opt)
    world, rank = acc.num_processes, acc.process_index
    acc.print(f"[seq2seq] {run.path.name}: {world} process(es) on {acc.device}")
    plan = batch_plan([len(x) + len(y) for x, y in zip(train["input_ids"], train["labels"])],
                      args.batch_size * world, args.max_steps, args.seed)
    model.train()
    bar = tqdm(total=args.max_steps, initial=start, desc=run.path.name, disable=not (args.progress and acc.is_main_process))
    t0, losses = time.time(), []
    for step in range(start, args.max_steps):
        batch = collate([train[i] for i in plan[step][rank::world]])
        batch = {k: v.to(acc.device) for k, v in batch.items()}
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.learning_rate, args.warmup_steps, args.max_steps)
        loss = model(**batch).loss
        acc.backward(loss)
        acc.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        check_finite(losses[-1], step + 1, str(run.path))
        tokens += int(batch["attention_mask"].sum()) * world  # source tokens, as Trainer's num_input_tokens_seen
        bar.update(1)
        done = step + 1
        if done % args.logging_steps == 0 or done == args.max_steps:
            avg = sum(losses) / len(losses)
            losses = []
            bar.set_postfix(loss=f"{avg:.3f}")
            if acc.is_main_process:
                run.log({"step": done, "max_steps": args.max_steps, "loss": round(avg, 4),
                         "learning_rate": opt.param_groups[0]["lr"], "tokens_seen": tokens})
        if done % args.save_steps == 0 or done == args.max_steps:
            if acc.is_main_process:
                save_loop_checkpoint(run.checkpoints, acc.unwrap_model(model), opt, done,
                                     extra={"tokens_seen": tokens, "train_seconds": seconds + time.time() - t0})
            acc.wait_for_everyone()
    bar.close()
    return {"model": acc.unwrap_model(model), "tokens_seen": tokens, "train_seconds": seconds + time.time() - t0,
            "is_main": acc.is_main_process}


# --- training: the Transformer (Seq2SeqTrainer) -----------------------------------------------------------

def train_transformer(model, train, tok, args: Seq2SeqArguments, run) -> dict:
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    from hfrepro.training import callbacks, make_training_args

    targs = make_training_args(
        cls=Seq2SeqTrainingArguments, output_dir=str(run.checkpoints), max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size, learning_rate=args.transformer_learning_rate,
        warmup_steps=args.warmup_steps, lr_scheduler_type="linear", weight_decay=0.0,
        max_grad_norm=args.max_grad_norm, logging_steps=args.logging_steps, save_steps=args.save_steps,
        seed=args.seed, disable_tqdm=not args.progress,
        # NOT "group_by_length": with transformers 5.23's LengthGroupedSampler this model never learned to use its
        # source (test loss equal with a shuffled source after 2,000 updates); random batches learn it in 300
        train_sampling_strategy="random")
    ck = run.last_checkpoint()
    before = 0.0
    if ck:
        print(f"[seq2seq] resuming {run.path.name} from {ck}")
        if (Path(ck) / ELAPSED_FILE).is_file():
            before = float((Path(ck) / ELAPSED_FILE).read_text())
    trainer = Seq2SeqTrainer(model=model, args=targs, train_dataset=train, processing_class=tok,
                             data_collator=DataCollatorForSeq2Seq(tok, model=model, label_pad_token_id=-100),
                             callbacks=[*callbacks(run), _elapsed_callback(before)])
    t0 = time.time()
    trainer.train(resume_from_checkpoint=ck)
    acc = trainer.accelerator
    return {"model": acc.unwrap_model(trainer.model), "tokens_seen": int(trainer.state.num_input_tokens_seen),
            "train_seconds": before + time.time() - t0, "is_main": acc.is_main_process}


ELAPSED_FILE = "hfrepro_train_seconds.txt"


def _elapsed_callback(before: float):
    """Writes the training time so far into each checkpoint, so that a resumed run reports its total time."""
    from transformers import TrainerCallback

    class ElapsedTime(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.time()

        def on_save(self, args, state, control, **kw):
            ck = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and ck.is_dir():
                (ck / ELAPSED_FILE).write_text(f"{before + time.time() - self.t0:.3f}")

    return ElapsedTime()


# --- one architecture: train, save, evaluate --------------------------------------------------------------

def run_arch(arch: str, pairs, tok, train, args: Seq2SeqArguments, root: Path) -> dict | None:
    from hfrepro.config import resolved
    from hfrepro.training import RunDir

    run = RunDir(root / arch)
    cfg = arch_config(args, arch)
    run.start(cfg, overwrite=args.overwrite)
    done = run.metrics()
    if done.get("bleu") is not None and (run.model_dir / "config.json").is_file():
        print(f"[seq2seq] {arch}: already trained and scored in {run.path}, reusing it")
        return done
    model = build_model(arch, tok, args)
    n_params = trainable_parameters(model)
    trainer = train_rnn if arch != "transformer" else train_transformer
    out = trainer(model, train, tok, args, run)
    if not out["is_main"]:
        return None
    model = out["model"].eval()
    save_model(model, tok, run.model_dir)
    from accelerate import PartialState
    metrics = {"arch": arch, "world_size": PartialState().num_processes, "parameters": n_params, "train_seconds": round(out["train_seconds"], 1),
               "steps": args.max_steps, "batch_size": args.batch_size, "source_tokens_seen": out["tokens_seen"],
               "train_pairs": len(train),
               "train_source_tokens_per_second": round(out["tokens_seen"] / max(out["train_seconds"], 1e-9), 1)}
    metrics.update(evaluate_model(model, tok, pairs, args, run.path, arch))
    run.write_metrics(metrics)
    write_card(run.model_dir, arch, pairs, metrics, cfg)
    return run.metrics()


def save_model(model, tok, model_dir: Path) -> None:
    from hfrepro.fsutil import atomic_dir

    with atomic_dir(model_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)


def test_subset(pairs, args: Seq2SeqArguments):
    test = pairs.splits["test"]
    if args.max_eval_examples and args.max_eval_examples < len(test):
        import numpy as np
        idx = sorted(np.random.default_rng(args.seed).choice(len(test), args.max_eval_examples, replace=False).tolist())
        test = test.select(idx)
    return test


def evaluate_model(model, tok, pairs, args: Seq2SeqArguments, folder: Path, arch: str) -> dict:
    """Translate the test split, score BLEU/chrF overall and by source length; write test.tsv, hyp/ref files."""
    from hfrepro.fsutil import atomic_write_text
    from hfrepro.seq2seq import scoring
    from hfrepro.seq2seq.decode import translate

    tokenize = args.bleu_tokenize or scoring.default_tokenize(pairs.target_lang)
    test = test_subset(pairs, args)
    src, ref = [scoring.one_line(x) for x in test["source"]], [scoring.one_line(x) for x in test["target"]]
    m: dict = {"test_sentences": len(src), "bleu_tokenize": tokenize, "num_beams": args.num_beams}
    t0 = time.time()
    hyp = translate(model, tok, src, num_beams=args.num_beams, batch_size=args.eval_batch_size,
                    progress=args.progress, desc=f"{arch}: translating test (beam {args.num_beams})")
    hyp = [scoring.one_line(x) for x in hyp]
    m["translate_seconds"] = round(time.time() - t0, 1)
    m["translate_sentences_per_second"] = round(len(src) / max(time.time() - t0, 1e-9), 1)
    s = scoring.score(hyp, ref, tokenize)
    m.update(bleu=s["bleu"], chrf=s["chrf"], bleu_signature=s["bleu_signature"], chrf_signature=s["chrf_signature"],
             bleu_string=s["bleu_string"], brevity_penalty=s["brevity_penalty"])
    m["by_length"] = scoring.by_length(src, hyp, ref, tokenize)
    if args.also_greedy and args.num_beams > 1:
        greedy = translate(model, tok, src, num_beams=1, batch_size=args.eval_batch_size, progress=args.progress,
                           desc=f"{arch}: translating test (greedy)")
        g = scoring.score(greedy, ref, tokenize)
        m.update(greedy_bleu=g["bleu"], greedy_chrf=g["chrf"])
    m.update(source_dependence(model, tok, test))
    scoring.write_lines(folder / "hyp.txt", hyp)
    scoring.write_lines(folder / "ref.txt", ref)
    scoring.write_lines(folder / "src.txt", src)
    atomic_write_text(folder / "test.tsv", "source\treference\thypothesis\n" + "".join(
        "\t".join(x.replace("\t", " ") for x in row) + "\n" for row in zip(src, ref, hyp)))
    print(f"[seq2seq] {arch}: {s['bleu_string']}")
    print(f"[seq2seq] {arch}: chrF2 = {s['chrf']:.2f}  ({s['chrf_signature']})")
    return m


def source_dependence(model, tok, test, n: int = 256) -> dict:
    """Teacher-forced test loss with each sentence's own source, and with the next sentence's source instead.
    Equal losses mean the decoder ignores the source (it is only a language model of the target so far)."""
    import torch
    from transformers import DataCollatorForSeq2Seq

    from hfrepro.seq2seq.data import features

    feats = features(tok, test.select(range(min(n, len(test)))))
    collate = DataCollatorForSeq2Seq(tok, model=model if hasattr(model, "prepare_decoder_input_ids_from_labels")
                                     else None, padding=True, label_pad_token_id=-100)
    batch = collate([feats[i] for i in range(len(feats))])
    other = torch.roll(torch.arange(len(feats)), 1)
    with torch.no_grad():
        own = model(**batch).loss.item()
        batch["input_ids"], batch["attention_mask"] = batch["input_ids"][other], batch["attention_mask"][other]
        shuffled = model(**batch).loss.item()
    return {"test_loss": round(own, 4), "test_loss_other_source": round(shuffled, 4)}


def write_card(model_dir: Path, arch: str, pairs, metrics: dict, cfg: dict) -> None:
    from hfrepro.cards import write_model_card

    what = {"rnn": "a GRU encoder-decoder without attention (the whole source in one vector; Cho et al. 2014)",
            "rnn_attention": "a GRU encoder-decoder with Bahdanau additive attention (Bahdanau et al. 2014)",
            "transformer": "a small Transformer encoder-decoder (M2M100/BART-family config, or MarianMT with "
                           "--transformer_style marian) trained from scratch"}[arch]
    src, tgt = pairs.source_lang, pairs.target_lang
    card_metrics = {"test BLEU": metrics["bleu"], "test chrF": metrics["chrf"],
                    "BLEU signature": metrics["bleu_signature"], "test sentences": metrics["test_sentences"],
                    "parameters (trainable)": metrics["parameters"], "training updates": metrics["steps"],
                    "training time (s)": metrics["train_seconds"]}
    card_metrics.update({f"BLEU, source {r['bucket']} words (n={r['sentences']})": r["bleu"]
                         for r in metrics["by_length"] if r["bleu"] is not None})
    loader = ("from hfrepro.seq2seq.decode import load_model, translate  # needs hfrepro installed\n"
              "model, tok = load_model(path)\n"
              "print(translate(model, tok, [\"Choose Format - Character.\"], num_beams=4))")
    from hfrepro.seq2seq.data import EMBEDDED
    write_model_card(
        model_dir, title=f"hfrepro seq2seq {arch}: {src}->{tgt} on {pairs.name}", license="apache-2.0",
        datasets=[pairs.name] if pairs.name in EMBEDDED else [], language=[src, tgt], pipeline_tag="translation",
        tags=["translation", "seq2seq", arch], library_name="transformers",
        description=(f"This is {what}, trained from scratch by hfrepro's stage 3 recipe on "
                     f"{metrics['train_pairs']:,} {src}->{tgt} pairs of `{pairs.name}`"
                     + (" (LibreOffice help texts, MPL-2.0)" if pairs.name in EMBEDDED else "") + ". "
                     f"{metrics['parameters']:,} trainable parameters, {metrics['steps']} updates of "
                     f"{metrics['batch_size']} pairs. Scores are on the held-out test split, BLEU and chrF computed "
                     "by sacrebleu through hfrepro's own `evaluate` module (signatures below).\n\n"
                     "From the command line:\n\n"
                     f"```bash\nhfrepro translate --model PATH_TO_THIS_FOLDER \"Choose Format - Character.\"\n```"),
        metrics=card_metrics, eval_metrics=["test BLEU", "test chrF"],
        eval_dataset=pairs.name if pairs.name in EMBEDDED else None, eval_split="test", task="translation",
        config=cfg, how_to_load=loader, command=f"hfrepro seq2seq --config {model_dir.parent / 'config.yaml'}",
        usage="Teaching and reproduction: it shows what a small model of this architecture learns in minutes of "
              "CPU. It is not a usable translation system.",
        limits="Trained for minutes on one domain (software help text); long or out-of-domain sentences are "
               "translated badly. " + ("Loading needs the hfrepro package installed (its own model class, no "
                                        "remote code)." if arch != "transformer" else ""))


# --- the whole run ----------------------------------------------------------------------------------------

def run(args: Seq2SeqArguments) -> dict | None:
    """Train and score the requested architectures; write the comparison. Returns the run's metrics (main
    process) or None (other processes)."""
    from transformers import AutoTokenizer

    from hfrepro.seq2seq import data as s2s_data
    from hfrepro.seq2seq import report, scoring
    from hfrepro.training import RunDir, setup_runtime

    archs = parse_archs(args.arch)
    if args.bleu_tokenize:
        scoring.check_tokenize(args.bleu_tokenize)
    if args.transformer_style not in ("pre_ln", "marian"):
        raise UserError(f"unknown --transformer_style {args.transformer_style!r}", fix="use pre_ln or marian")
    for name in ("max_steps", "batch_size", "vocab_size"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name} must be positive, got {getattr(args, name)}")
    setup_runtime(seed=args.seed, threads=args.threads or None)
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # A bare PartialState() ignores ACCELERATE_USE_CPU (set by setup_runtime; only AcceleratorState reads it):
    # without cpu=True, N processes launched on a CPU machine would each train alone.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    root = RunDir(args.output_dir)
    tok_dir = root.path / "tokenizer"
    continuing = root.start(shared_config(args), overwrite=args.overwrite)
    pairs = s2s_data.load_pairs(args.dataset, args.source_lang, args.target_lang)
    if state.is_main_process and (not continuing or not (tok_dir / "tokenizer.json").is_file()):
        from hfrepro.fsutil import atomic_dir  # a new run: a new tokenizer (never a stale one)
        tok = s2s_data.train_tokenizer(pairs, args.vocab_size, args.tokenizer_examples)
        with atomic_dir(tok_dir) as tmp:
            tok.save_pretrained(tmp)
    state.wait_for_everyone()
    tok = AutoTokenizer.from_pretrained(tok_dir)
    train_split = pairs.splits["train"]
    if args.max_train_examples:
        train_split = train_split.select(range(min(args.max_train_examples, len(train_split))))
    train = s2s_data.features(tok, train_split, args.max_train_tokens)
    if len(train) == 0:
        raise UserError(f"no training pair is at most {args.max_train_tokens} tokens long",
                        fix="raise --max_train_tokens (or 0 to keep all)")
    print(f"[seq2seq] {pairs.name} {pairs.source_lang}->{pairs.target_lang}: {len(train):,} training pairs "
          f"(of {len(train_split):,}; at most {args.max_train_tokens or 'any'} tokens a side), "
          f"{len(pairs.splits['test']):,} test pairs, vocabulary {len(tok):,}")
    results = {}
    for arch in archs:
        m = run_arch(arch, pairs, tok, train, args, root.path)
        state.wait_for_everyone()  # the other processes wait while the main one scores
        if m is not None:
            results[arch] = m
    if not state.is_main_process or not results:  # the main process alone scores and writes the comparison
        return None
    for arch in ARCHS:  # earlier runs of other archs in the same folder join the comparison
        if arch not in results and (root.path / arch / "metrics.json").is_file():
            m = RunDir(root.path / arch).metrics()
            if m.get("bleu") is not None:
                results[arch] = m
    summary = report.write_comparison(root.path, results, pairs, tok, args)
    return root.write_metrics(summary)

