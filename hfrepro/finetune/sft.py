"""Supervised fine-tuning with TRL's `SFTTrainer`: full fine-tuning, head-only (transfer learning) or LoRA.

    from hfrepro.finetune.sft import train_sft
    metrics = train_sft("smollm2-135m-instruct", rows, method="lora", run_dir="runs/finetune/demo",
                        num_train_epochs=2, learning_rate=5e-4)
    metrics["model_dir"]      # a folder plain transformers / peft load (README.md model card inside)

This is the stable core API of stage 5 (stage 6 uses it for its SFT step). `train_sft` accepts

- prompt/completion rows (`{"prompt": str, "completion": str}`, or both as message lists): loss on the
  completion only (TRL's completion-only loss);
- chat rows (`{"messages": [{"role": ..., "content": ...}, ...]}`): loss on the assistant turns only, every turn
  of a multi-turn conversation. TRL needs `{% generation %}` markers in the chat template for that; SmolLM2's
  ChatML template has none and TRL cannot patch it, so `training_chat_template` derives one that renders
  byte-for-byte the same text (checked on a probe conversation). Templates where neither works are handled by
  splitting each conversation into one prompt/completion example per assistant turn;
- plain `{"text": ...}` rows (language modelling on everything).

The tokenizer's end-of-turn token is trained: SmolLM2's pad token *is* its eos (`<|im_end|>`); TRL's collator
masks padding by length, not by id, so the real `<|im_end|>` closing each answer keeps its label and the model
learns to stop (tested).

Methods (`method=`):

- `full`: every parameter trainable.
- `lora`: PEFT LoRA adapters (default r=8, alpha=16, on the attention projections q/k/v/o) - the base frozen.
- `head`: transfer learning, "keep the body, adjust only the output end". SmolLM2 *ties* its output layer to
  its input embedding matrix, so training "the head" as-is would also change every input embedding. We untie:
  the output layer (`lm_head`) becomes its own matrix, initialised as a copy of the shared one (the model's
  outputs are unchanged at step 0), and it is trained together with the final RMSNorm; the embeddings and all
  30 blocks stay frozen. That is 28.3M trainable parameters (vocab 49,152 x 576 + 576): an LM's output end is
  big, ~17% of the untied model - counted and reported as such, not hidden.

Resume: the run folder records the resolved config; calling `train_sft` again with the same config continues
from the last checkpoint (a finished run returns its metrics without training again). Under several
processes (accelerate) only the main process writes the model folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from hfrepro.errors import UserError

METHODS = ("full", "head", "lora")

# Defaults for runs of a few epochs over a few hundred examples (the README workflow). LoRA and the untied head
# want a larger step than full fine-tuning; the 16-step comparison uses larger ones (compare.COMPARE_LR).
DEFAULT_LR = {"full": 3e-5, "head": 1e-3, "lora": 1e-3}

ROLES = ("system", "user", "assistant", "tool")


@dataclass
class LoraSettings:
    """LoRA hyper-parameters (the ones people tune). `target_modules`: "attention" (q/k/v/o projections,
    found by name), "all-linear" (every linear layer except the output layer), or a comma-separated list."""
    r: int = field(default=8, metadata={"help": "LoRA rank"})
    alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch"})
    target_modules: str = field(default="attention",
                                metadata={"help": "attention | all-linear | comma-separated module names"})

    def peft_config(self, model):
        from peft import LoraConfig

        return LoraConfig(task_type="CAUSAL_LM", r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self._targets(model), bias="none")

    def _targets(self, model):
        t = (self.target_modules or "attention").strip()
        if t == "all-linear":
            return "all-linear"
        if t == "attention":
            names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
            found = [m for m in ("q_proj", "k_proj", "v_proj", "o_proj") if m in names]
            if found:
                return found
            for group in (["c_attn", "c_proj"], ["query", "key", "value"], ["query_key_value", "dense"]):
                if set(group) <= names:
                    return group
            raise UserError("cannot find the attention projections of this model for LoRA",
                            fix="pass --lora_target_modules all-linear, or name the modules (comma-separated)")
        return [s.strip() for s in t.split(",") if s.strip()]


# --- datasets -------------------------------------------------------------------------------------------

def _is_messages(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in v)


def dataset_kind(row: dict) -> str:
    """'messages', 'prompt_completion' (strings), 'conversational_prompt_completion', or 'text'."""
    if "messages" in row:
        return "messages"
    if "prompt" in row and "completion" in row:
        return "conversational_prompt_completion" if _is_messages(row["prompt"]) else "prompt_completion"
    if "text" in row:
        return "text"
    raise UserError(f"cannot tell the dataset format from its columns ({', '.join(row)})",
                    fix='use "prompt"/"completion", "messages" (chat) or "text" fields; '
                        "check a JSONL file first with `hfrepro finetune prepare-data -f FILE`")


def as_dataset(data) -> tuple[Any, str]:
    """A `datasets.Dataset` holding only the columns SFT needs, and its kind."""
    from datasets import Dataset

    if isinstance(data, (str, Path)):
        from hfrepro.finetune.jsonl import load_examples
        data = load_examples(data)
    if not isinstance(data, Dataset):
        data = list(data)
        if not data:
            raise UserError("the training dataset is empty")
        data = Dataset.from_list([dict(r) for r in data])
    if len(data) == 0:
        raise UserError("the training dataset is empty")
    kind = dataset_kind(data[0])
    keep = {"messages": ["messages"], "text": ["text"]}.get(kind, ["prompt", "completion"])
    extra = [c for c in data.column_names if c not in keep]
    if extra:
        data = data.remove_columns(extra)
    return data, kind


def fingerprint(ds) -> str:
    """A short content hash of a dataset (part of the run config: resuming on other data is refused)."""
    h = hashlib.sha256()
    for row in ds:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def split_turns(ds):
    """One conversational prompt/completion example per assistant turn (fallback for unmarkable templates)."""
    from datasets import Dataset

    rows = []
    for ex in ds:
        msgs = ex["messages"]
        for i, m in enumerate(msgs):
            if m["role"] == "assistant" and i > 0:
                rows.append({"prompt": msgs[:i], "completion": [m]})
    if not rows:
        raise UserError("no assistant turn to learn from in the chat examples",
                        fix="every conversation needs at least one assistant message after a user message")
    return Dataset.from_list(rows)


# --- chat templates -------------------------------------------------------------------------------------

_CHATML_TURN = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
_CHATML_TURN_MARKED = (
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}"
    "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}" + _CHATML_TURN + "{% endif %}")

_PROBE = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
          {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
          {"role": "assistant", "content": "Goodbye."}]


def training_chat_template(tokenizer) -> str | None:
    """A chat template with `{% generation %}` markers rendering exactly like the tokenizer's own, or None.

    None when the template already has markers. Tries TRL's known templates first, then ChatML-style templates
    (SmolLM2, ...) by wrapping the assistant turn; a candidate is only accepted if it renders the probe
    conversation identically and marks exactly the assistant answers.
    """
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    tpl = getattr(tokenizer, "chat_template", None)
    if not tpl:
        return None
    if has_generation_markers(tpl):
        return None
    candidates = []
    try:
        c = get_training_chat_template(tokenizer)
        if c:
            candidates.append(c)
    except (ValueError, TypeError):
        pass
    if _CHATML_TURN in tpl:
        candidates.append(tpl.replace(_CHATML_TURN, _CHATML_TURN_MARKED))
    for cand in candidates:
        if _renders_same(tokenizer, tpl, cand):
            return cand
    return ""  # cannot mark: caller falls back to per-turn prompt/completion examples


def _renders_same(tokenizer, tpl: str, cand: str) -> bool:
    try:
        for msgs in (_PROBE, _PROBE[1:]):
            a = tokenizer.apply_chat_template(msgs, tokenize=False, chat_template=tpl)
            b = tokenizer.apply_chat_template(msgs, tokenize=False, chat_template=cand)
            if a != b:
                return False
        out = tokenizer.apply_chat_template(_PROBE[1:], chat_template=cand, return_dict=True,
                                            return_assistant_tokens_mask=True)
        marked = tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
        return "Hello!" in marked and "Goodbye." in marked and "Hi there" not in marked
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False


# --- methods --------------------------------------------------------------------------------------------

def _final_norm(model):
    base = getattr(model, "base_model", model)
    for name in ("norm", "ln_f", "final_layernorm", "final_layer_norm"):
        mod = getattr(base, name, None)
        if mod is not None and hasattr(mod, "weight"):
            return name, mod
    return None, None


def make_head_only(model) -> dict:
    """Freeze everything but the output end: an untied `lm_head` (copy of the shared matrix) + final norm."""
    import torch

    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if out is None:
        raise UserError("this model has no output layer (lm_head) to train", fix="use --method full or lora")
    untied = False
    if inp is not None and out.weight.data_ptr() == inp.weight.data_ptr():
        out.weight = torch.nn.Parameter(inp.weight.detach().clone())
        model.config.tie_word_embeddings = False
        text_cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
        if text_cfg is not None:
            text_cfg.tie_word_embeddings = False
        untied = True
    for p in model.parameters():
        p.requires_grad_(False)
    trained = ["lm_head"]
    for p in out.parameters():
        p.requires_grad_(True)
    norm_name, norm = _final_norm(model)
    if norm is not None:
        for p in norm.parameters():
            p.requires_grad_(True)
        trained.append(norm_name)
    return {"head_untied": untied, "head_modules": trained}


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total), each shared tensor counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        key = p.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def flops_per_token(method: str, total: int, trainable: int, head: int = 0) -> float:
    """Training FLOPs per token (the 6N rule and its parameter-efficient variants), attention quadratic term
    left out (short sequences here).

    full: forward 2N + backward 4N = 6N.  lora: forward 2N + backward through the activations 2N (no weight
    gradients for the frozen base) + 6 per adapter parameter.  head: forward 2N, then backward only through the
    output layer: weight gradient 2*N_head and the gradient into the final norm 2*N_head.
    """
    if method == "full":
        return 6.0 * total
    if method == "lora":
        return 4.0 * (total - trainable) + 6.0 * trainable
    return 2.0 * total + 4.0 * head


# --- the progress log (what `hfrepro finetune follow` shows) ----------------------------------------------

def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class EventLog:
    """Human-readable events in run/output.log (and on stdout if `echo`), like the hosted tool's:
    "[2026-11-21 14:20:01] Completed epoch 1/4"."""

    def __init__(self, path: str | Path | None, echo: bool = True):
        self.path = Path(path) if path else None
        self.echo = echo

    def __call__(self, msg: str) -> None:
        if os.environ.get("RANK", "0") not in ("", "0"):  # several processes: only the main one writes
            return
        line = f"[{_now()}] {msg}"
        if self.echo:
            print(line, flush=True)
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")


def progress_callback(log: Callable[[str], None], flops_tok: float, every: int = 10):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        t0 = None

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.time()
            if state.is_world_process_zero:
                n_ep = int(getattr(state, "num_train_epochs", 0) or math.ceil(args.num_train_epochs))
                start = f" (resuming at step {state.global_step})" if state.global_step else ""
                log(f"Training started: {state.max_steps} steps, {n_ep} epoch(s){start}")

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if not state.is_world_process_zero or "loss" not in logs:
                return
            if state.global_step % every and state.global_step != state.max_steps and state.global_step != 1:
                return
            el = time.time() - (self.t0 or time.time())
            eta = el / max(state.global_step, 1) * (state.max_steps - state.global_step)
            log(f"Step {state.global_step}/{state.max_steps}: loss={logs['loss']:.4f} "
                f"tokens_seen={int(state.num_input_tokens_seen):,} elapsed={el:.0f}s eta={eta:.0f}s")

        def on_epoch_end(self, args, state, control, **kw):
            if not state.is_world_process_zero:
                return
            total = int(getattr(state, "num_train_epochs", 0) or math.ceil(args.num_train_epochs))
            losses = [h["loss"] for h in state.log_history if "loss" in h]
            tok = int(state.num_input_tokens_seen)
            log(f"Completed epoch {round(state.epoch or 0)}/{total}"
                + (f" (loss {losses[-1]:.4f}, " if losses else " (")
                + f"tokens seen {tok:,}, ~{flops_tok * tok:.2e} FLOPs so far)")

    return Progress()


# --- the API --------------------------------------------------------------------------------------------

@dataclass
class SFTSetup:
    """Everything `train_sft` prepared before training (exposed for tests and the benchmark)."""
    trainer: Any
    run: Any
    config: dict
    kind: str
    method: str
    base_name: str | None
    tokenizer: Any
    original_template: str | None
    assistant_only: bool
    trainable: int
    total: int
    flops_per_token: float
    tokens_per_epoch: int
    head_info: dict
    log: Callable[[str], None]
    finished: dict | None = None   # metrics of an already finished identical run


def build_trainer(model, train_dataset, eval_dataset=None, *, method: str = "lora", run_dir: str | Path,
                  tokenizer=None, lora: LoraSettings | dict | None = None, merge: bool = False,
                  sft_config=None, config: dict | None = None, overwrite: bool = False,
                  callbacks: Sequence = (), log: Callable[[str], None] | None = None, echo: bool = True,
                  **sft_kwargs) -> SFTSetup:
    """The SFTTrainer `train_sft` uses, with the run folder started (same arguments as `train_sft`)."""
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from hfrepro.training import (RunDir, callbacks as base_callbacks, count_tokens_seen, cpu_sane, make_training_args,
                                  no_activation_checkpointing)

    if method not in METHODS:
        raise UserError(f"unknown method {method!r}", fix=f"use one of: {', '.join(METHODS)}")
    lora = LoraSettings(**lora) if isinstance(lora, dict) else (lora or LoraSettings())
    if not echo:
        import datasets
        datasets.disable_progress_bars()
    run = RunDir(run_dir)
    log = log or EventLog(run.path / "output.log", echo=echo)

    train_ds, kind = as_dataset(train_dataset)
    eval_ds = as_dataset(eval_dataset)[0] if eval_dataset is not None else None
    base_name = model if isinstance(model, (str, Path)) else getattr(getattr(model, "config", None),
                                                                     "_name_or_path", None)
    base_name = str(base_name) if base_name is not None else None
    if sft_config is None:
        sft_kwargs.setdefault("learning_rate", DEFAULT_LR[method])
    cfg = dict(config) if config is not None else {
        "model": base_name, "method": method, "lora": asdict(lora) if method == "lora" else None,
        "merge": merge, **_plain_kwargs(sft_config.to_dict() if sft_config is not None else sft_kwargs)}
    cfg.setdefault("train_fingerprint", fingerprint(train_ds))
    cfg.setdefault("train_rows", len(train_ds))
    resumed = run.start(cfg, overwrite=overwrite)
    done = run.metrics()
    finished = done if (resumed and done.get("finished") and Path(done.get("model_dir", run.model_dir)).is_dir()) \
        else None

    # model and tokenizer
    if isinstance(model, (str, Path)):
        from hfrepro.models import load_causal_lm, load_tokenizer, resolve
        path = resolve(str(model))
        tokenizer = tokenizer or load_tokenizer(path)
        model = load_causal_lm(path)
    elif tokenizer is None:
        raise UserError("train_sft got a model object without its tokenizer", fix="pass tokenizer=...")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    original_template = getattr(tokenizer, "chat_template", None)

    # chat data: loss on assistant turns only
    assistant_only = False
    if kind in ("messages", "conversational_prompt_completion") and not original_template:
        raise UserError("chat-format data needs a tokenizer with a chat template, and this model has none",
                        fix="use prompt/completion strings, or a chat model such as smollm2-135m-instruct")
    if kind == "messages":
        tpl = training_chat_template(tokenizer)   # None: already marked; "": cannot be marked
        if tpl is None or tpl:
            assistant_only = True
            if tpl:
                tokenizer.chat_template = tpl
        else:
            log("Chat template has no generation markers and cannot be patched: training on one "
                "prompt/completion example per assistant turn instead")
            train_ds = split_turns(train_ds)
            eval_ds = split_turns(eval_ds) if eval_ds is not None else None
            kind = "conversational_prompt_completion"

    context = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
    if sft_config is None:
        defaults = dict(num_train_epochs=3, per_device_train_batch_size=8, per_device_eval_batch_size=8,
                        logging_steps=1, save_strategy="epoch", save_total_limit=1, seed=0,
                        max_length=min(1024, context or 1024), disable_tqdm=not echo)
        args = make_training_args(cls=SFTConfig, **{**defaults, **sft_kwargs,
                                                    "output_dir": str(run.checkpoints)})
    else:
        args = cpu_sane(sft_config)
        args.output_dir = str(run.checkpoints)
    args.assistant_only_loss = assistant_only
    args.report_to = []
    count_tokens_seen(args)  # "tokens seen" in the progress log and metrics
    if method != "full":  # frozen inputs: checkpointing would need enable_input_require_grads
        no_activation_checkpointing(args)

    head_info = make_head_only(model) if method == "head" else {}
    peft_config = lora.peft_config(model) if method == "lora" else None
    n_tok = _count_tokens(train_ds, tokenizer, kind, args.max_length)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config,
                         callbacks=[*base_callbacks(run), *callbacks])
    trainer.remove_callback(PrinterCallback)  # our progress lines replace its raw dicts
    trainable, total = count_parameters(trainer.model)
    f_tok = flops_per_token(method, total, trainable, trainable if method == "head" else 0)
    trainer.add_callback(progress_callback(log, f_tok, every=max(1, int(args.logging_steps) * 10)))
    return SFTSetup(trainer=trainer, run=run, config=cfg, kind=kind, method=method, base_name=base_name,
                    tokenizer=tokenizer, original_template=original_template, assistant_only=assistant_only,
                    trainable=trainable, total=total, flops_per_token=f_tok, tokens_per_epoch=n_tok,
                    head_info=head_info, log=log, finished=finished)


def train_sft(model, train_dataset, eval_dataset=None, *, method: str = "lora", run_dir: str | Path,
              tokenizer=None, lora: LoraSettings | dict | None = None, merge: bool = False,
              sft_config=None, config: dict | None = None, overwrite: bool = False,
              callbacks: Sequence = (), log: Callable[[str], None] | None = None, echo: bool = True,
              card: dict | None = None, **sft_kwargs) -> dict:
    """Fine-tune `model` on `train_dataset` with TRL's SFTTrainer; returns the run's metrics (also in
    run_dir/metrics.json). Stable signature: stage 6 calls it.

    model: an embedded name ("smollm2-135m-instruct"), a local folder or Hub id, or a loaded causal LM
        (then pass `tokenizer`).
    train_dataset / eval_dataset: a `datasets.Dataset`, a list of dicts, or a JSONL path (see module doc).
    method: "full" | "head" | "lora".  lora: `LoraSettings` (or a dict of its fields).
    merge: for LoRA, write merged full weights to run_dir/model and keep the adapter in run_dir/adapter.
    sft_config: a ready `trl.SFTConfig` (e.g. parsed by a recipe); else `**sft_kwargs` are SFTConfig fields
        (num_train_epochs, max_steps, learning_rate, per_device_train_batch_size, max_length, seed, ...)
        over hfrepro's CPU-sane defaults. output_dir is always run_dir/checkpoints.
    config: the resolved config to record (defaults to one built from the arguments).
    log: where the human-readable progress goes (default: run_dir/output.log, and stdout if `echo`).
    card: extra `write_model_card` fields (title, datasets, description, language, ...).

    Metrics: method, trainable_params, total_params, trainable_pct, train_loss, [eval_loss], steps, epochs,
    tokens_seen, train_seconds, tokens_per_second, peak_memory_bytes, flops_estimate, model_dir, ...
    """
    s = build_trainer(model, train_dataset, eval_dataset, method=method, run_dir=run_dir, tokenizer=tokenizer,
                      lora=lora, merge=merge, sft_config=sft_config, config=config, overwrite=overwrite,
                      callbacks=callbacks, log=log, echo=echo, **sft_kwargs)
    if s.finished:
        s.log(f"Run already finished: {s.finished.get('model_dir')} (delete the folder, or pass overwrite, to "
              "train again)")
        return s.finished
    metrics = fit(s)
    return save(s, metrics, merge=merge, card=card)  # every process enters: save() waits for all, main writes


def fit(s: SFTSetup) -> dict:
    """Train (resuming from the last checkpoint if any) and measure; returns the metrics (nothing saved)."""
    from hfrepro.finetune.memory import PeakMemory

    trainer, run, log, args, method = s.trainer, s.run, s.log, s.trainer.args, s.method
    epochs = args.num_train_epochs if args.max_steps <= 0 else None
    n_ex = len(trainer.train_dataset)
    log(f"Fine-tune {run.path.name}: method={method} model={s.base_name} examples={n_ex:,} ({s.kind}) "
        f"trainable={s.trainable:,}/{s.total:,} ({100 * s.trainable / s.total:.2f}%)")
    if epochs:
        planned, how = int(s.tokens_per_epoch * epochs), f"{s.tokens_per_epoch:,} tokens/epoch x {epochs:g} epoch(s)"
    else:
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        planned = int(s.tokens_per_epoch / max(n_ex, 1) * per_step * args.max_steps)
        how = f"{args.max_steps} steps x {per_step} examples x {s.tokens_per_epoch / max(n_ex, 1):.1f} tokens"
    log(f"Estimated cost: ~{planned:,} tokens ({how}) x {s.flops_per_token:.3g} FLOPs/token "
        f"~ {s.flops_per_token * planned:.2e} FLOPs")
    ckpt = run.last_checkpoint()
    if ckpt:
        log(f"Resuming from {ckpt}")
    with PeakMemory() as pm:   # entering it frees memory first (gc, malloc_trim): not part of the timing
        t0 = time.time()
        out = trainer.train(resume_from_checkpoint=ckpt)
        train_seconds = time.time() - t0
    state = trainer.state
    metrics: dict[str, Any] = {
        "method": method, "model": s.base_name, "format": s.kind, "examples": n_ex,
        "trainable_params": s.trainable, "total_params": s.total, "trainable_pct": 100.0 * s.trainable / s.total,
        "train_loss": float(out.training_loss), "steps": int(state.global_step),
        "epochs": float(state.epoch or 0), "tokens_seen": int(state.num_input_tokens_seen),
        "train_seconds": round(train_seconds, 2),
        "tokens_per_second": round(state.num_input_tokens_seen / max(train_seconds, 1e-9), 1),
        "peak_memory_bytes": int(pm.peak_bytes), "peak_memory_kind": pm.kind,
        "flops_per_token": s.flops_per_token, "flops_estimate": s.flops_per_token * int(state.num_input_tokens_seen),
        "trainer_total_flos": float(state.total_flos), "learning_rate": float(args.learning_rate),
        "assistant_only_loss": s.assistant_only, "resumed_from": ckpt, "world_size": int(args.world_size),
        **s.head_info,
    }
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    if losses:
        metrics["first_loss"], metrics["last_loss"] = float(losses[0]), float(losses[-1])
    if trainer.eval_dataset is not None:
        metrics["eval_loss"] = float(trainer.evaluate().get("eval_loss", float("nan")))
    return metrics


def save(s: SFTSetup, metrics: dict, merge: bool = False, card: dict | None = None) -> dict:
    """Write run/model (and run/adapter when merging LoRA) with a model card; record the metrics."""
    from hfrepro.fsutil import atomic_dir

    trainer, run, log, method = s.trainer, s.run, s.log, s.method
    acc = trainer.accelerator
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return metrics
    tok = s.tokenizer
    tok.chat_template = s.original_template
    unwrapped = acc.unwrap_model(trainer.model)
    model_dir, adapter_dir = run.model_dir, None
    if method == "lora" and merge:
        adapter_dir = run.path / "adapter"
        with atomic_dir(adapter_dir) as tmp:
            unwrapped.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            _card(tmp, metrics, s.config, s.base_name, method, card, adapter=True)
        unwrapped = unwrapped.merge_and_unload()
    with atomic_dir(model_dir) as tmp:
        unwrapped.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        _card(tmp, metrics, s.config, s.base_name, method, card, adapter=(method == "lora" and not merge),
              merged=(method == "lora" and merge))
    metrics["model_dir"] = str(model_dir)
    if adapter_dir:
        metrics["adapter_dir"] = str(adapter_dir)
    metrics["finished"] = True
    run.write_metrics(metrics)
    log(f"Fine-tune succeeded: {metrics['steps']} steps, {metrics['tokens_seen']:,} tokens, "
        f"train loss {metrics['train_loss']:.4f}, {metrics['train_seconds']:.0f}s; model saved to {model_dir}")
    return metrics


def _plain_kwargs(d: dict) -> dict:
    from hfrepro.config import resolved

    class _O:
        def to_dict(self):
            return d

    skip = {"output_dir", "logging_dir", "hub_token", "push_to_hub_token"}
    return {k: v for k, v in resolved(_O()).items() if k not in skip}


def _count_tokens(ds, tokenizer, kind: str, max_length: int | None) -> int:
    """Tokens one epoch will process (as SFTTrainer will see them, +1 eos per example)."""
    n = 0
    for ex in ds:
        if kind == "messages":
            k = len(tokenizer.apply_chat_template(ex["messages"], tokenize=True, return_dict=True)["input_ids"])
        elif kind == "conversational_prompt_completion":
            k = len(tokenizer.apply_chat_template(ex["prompt"] + ex["completion"], tokenize=True,
                                                  return_dict=True)["input_ids"])
        elif kind == "text":
            k = len(tokenizer(ex["text"])["input_ids"]) + 1
        else:
            k = len(tokenizer(ex["prompt"] + ex["completion"])["input_ids"]) + 1
        n += min(k, max_length or k)
    return n


def _card(folder, metrics, cfg, base_name, method, card, adapter=False, merged=False):
    from hfrepro.cards import write_model_card

    card = dict(card or {})
    what = {"full": "full fine-tuning (every parameter)", "lora": "LoRA adapters (PEFT)",
            "head": "head-only transfer learning (untied output layer + final norm; body frozen)"}[method]
    if merged:
        what += ", merged into the base weights"
    keys = ("method", "trainable_params", "total_params", "trainable_pct", "train_loss", "eval_loss", "steps",
            "epochs", "tokens_seen", "train_seconds", "flops_estimate")
    base = str(base_name) if base_name else None
    desc = card.pop("description", "") or (
        f"Supervised fine-tuning of `{base}` with TRL's `SFTTrainer` by hfrepro (stage 5): {what}. "
        f"{metrics['trainable_params']:,} of {metrics['total_params']:,} parameters trainable "
        f"({metrics['trainable_pct']:.2f}%).")
    write_model_card(folder, title=card.pop("title", f"{Path(str(base)).name} fine-tuned ({method})"),
                     base_model=card.pop("base_model", _hub_base(base)), license=card.pop("license", "apache-2.0"),
                     pipeline_tag="text-generation",
                     tags=["sft", "trl", method, *(["peft", "lora"] if method == "lora" else []),
                           *card.pop("tags", [])],
                     library_name="peft" if adapter else "transformers", description=desc,
                     metrics={k: metrics[k] for k in keys if k in metrics}, config=cfg,
                     usage=card.pop("usage", "Chat with it: `hfrepro chat --model <this folder>`."),
                     limits=card.pop("limits", "A small demonstration fine-tune; evaluate it on your own task "
                                               "before relying on it."), **card)


def _hub_base(base: str | None) -> str | None:
    """The Hub id of an embedded base model (for the card's base_model), else the name given."""
    if not base:
        return None
    p = Path(base)
    try:
        readme = (p / "README.md").read_text(encoding="utf-8") if p.is_dir() else ""
    except OSError:
        readme = ""
    for line in readme.splitlines():
        if line.startswith("base_model:"):
            return line.split(":", 1)[1].strip()
    from hfrepro import assets
    if base in assets.ASSETS:
        return _hub_base(str(assets.path(base)))
    return None if p.is_absolute() or p.exists() else base


def iter_rows(data: Iterable[dict]) -> list[dict]:
    return [dict(r) for r in data]
