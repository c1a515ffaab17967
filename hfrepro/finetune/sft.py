"""What TRL's `SFTTrainer` leaves to the caller, for `recipes/sft.py`: the data's format, the loss on assistant
turns only, head-only transfer learning, and the cost estimate and progress log of a fine-tuning job.

Data formats (one JSON object per row):

- prompt/completion (`{"prompt": str, "completion": str}`, or both as message lists): the loss falls on the
  completion only (TRL's completion-only loss);
- chat (`{"messages": [{"role": ..., "content": ...}, ...]}`): the loss falls on the assistant turns only, every
  turn of a multi-turn conversation. TRL needs `{% generation %}` markers in the chat template for that;
  SmolLM2's ChatML template has none and TRL cannot patch it, so `training_chat_template` derives one that
  renders byte-for-byte the same text (checked on a probe conversation). Templates where neither works are
  handled by splitting each conversation into one prompt/completion example per assistant turn;
- plain text (`{"text": ...}`): language modelling on everything.

The tokenizer's end-of-turn token is trained: SmolLM2's pad token *is* its eos (`<|im_end|>`); TRL's collator
masks padding by length, not by id, so the real `<|im_end|>` closing each answer keeps its label and the model
learns to stop (tests/test_finetune_sft.py).

Head-only (`make_head_only`): transfer learning, "keep the body, adjust only the output end". SmolLM2 *ties* its
output layer to its input embedding matrix, so training "the head" as-is would also change every input
embedding. We untie: the output layer (`lm_head`) becomes its own matrix, initialised as a copy of the shared
one (the model's outputs are unchanged at step 0), and it trains together with the final RMSNorm; the
embeddings and all 30 blocks stay frozen. That is 28.3M trainable parameters (vocab 49,152 x 576 + 576): an
LM's output end is big, ~17% of the untied model - counted and reported as such, not hidden.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from hfrepro.errors import UserError

METHODS = ("full", "head", "lora")


# --- data formats ---------------------------------------------------------------------------------------

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


def as_dataset(rows: list[dict]) -> tuple[Any, str]:
    """A `datasets.Dataset` holding only the columns SFT needs, and its kind."""
    from datasets import Dataset

    if not rows:
        raise UserError("the training dataset is empty")
    kind = dataset_kind(rows[0])
    keep = {"messages": ["messages"], "text": ["text"]}.get(kind, ["prompt", "completion"])
    return Dataset.from_list([{k: r[k] for k in keep if k in r} for r in rows]), kind


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


# --- loss on the assistant turns ------------------------------------------------------------------------

_CHATML_TURN = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
_CHATML_TURN_MARKED = (
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}"
    "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}" + _CHATML_TURN + "{% endif %}")

_PROBE = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
          {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
          {"role": "assistant", "content": "Goodbye."}]


def training_chat_template(tokenizer) -> str | None:
    """A chat template with `{% generation %}` markers rendering exactly like the tokenizer's own; None when
    the template already has markers (or there is none); "" when it cannot be marked.

    Tries TRL's known templates first, then ChatML-style templates (SmolLM2, ...) by wrapping the assistant
    turn; a candidate is only accepted if it renders the probe conversation identically and marks exactly
    the assistant answers.
    """
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    tpl = getattr(tokenizer, "chat_template", None)
    if not tpl or has_generation_markers(tpl):
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
    return ""


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


def assistant_only(tokenizer, train, valid, kind: str, log: Callable[[str], None]) -> tuple[Any, Any, str, bool]:
    """Arrange for the loss to fall on the assistant turns of chat data: patch the tokenizer's chat template
    with generation markers (the caller restores it before saving), or fall back to one prompt/completion
    example per assistant turn. Returns (train, valid, kind, assistant_only_loss)."""
    if kind in ("messages", "conversational_prompt_completion") and not getattr(tokenizer, "chat_template", None):
        raise UserError("chat-format data needs a tokenizer with a chat template, and this model has none",
                        fix="use prompt/completion strings, or a chat model such as smollm2-135m-instruct")
    if kind != "messages":
        return train, valid, kind, False
    tpl = training_chat_template(tokenizer)
    if tpl is None or tpl:
        if tpl:
            tokenizer.chat_template = tpl
        return train, valid, kind, True
    log("Chat template has no generation markers and cannot be patched: training on one prompt/completion "
        "example per assistant turn instead")
    return split_turns(train), split_turns(valid) if valid is not None else None, \
        "conversational_prompt_completion", False


# --- head-only transfer learning ------------------------------------------------------------------------

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


def no_activation_checkpointing(args) -> None:
    """Turn activation (gradient) checkpointing off under both names (TRL configs default it on): with frozen
    inputs (head, LoRA) it would need `enable_input_require_grads`, and it only slows a small model down."""
    for name in ("activation_checkpointing", "gradient_checkpointing"):
        if getattr(args, name, False):
            setattr(args, name, False)


# --- cost -----------------------------------------------------------------------------------------------

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


def count_tokens(ds, tokenizer, kind: str, max_length: int | None) -> int:
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


def cost_line(args, n_examples: int, tokens_per_epoch: int, flops_tok: float) -> str:
    """"Estimated cost: ~N tokens (how) x F FLOPs/token ~ X FLOPs" for the planned run."""
    if args.max_steps <= 0:
        epochs = args.num_train_epochs
        planned, how = int(tokens_per_epoch * epochs), f"{tokens_per_epoch:,} tokens/epoch x {epochs:g} epoch(s)"
    else:
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        per_ex = tokens_per_epoch / max(n_examples, 1)
        planned = int(per_ex * per_step * args.max_steps)
        how = f"{args.max_steps} steps x {per_step} examples x {per_ex:.1f} tokens"
    return (f"Estimated cost: ~{planned:,} tokens ({how}) x {flops_tok:.3g} FLOPs/token "
            f"~ {flops_tok * planned:.2e} FLOPs")


# --- the progress log (what `hfrepro finetune follow` shows) ----------------------------------------------

class EventLog:
    """Human-readable events in a run's output.log (and on stdout if `echo`), like the hosted tool's:
    "[2026-11-21 14:20:01] Completed epoch 1/4". Under several processes only the first one writes."""

    def __init__(self, path: str | Path | None, echo: bool = True):
        self.path = Path(path) if path else None
        self.echo = echo

    def __call__(self, msg: str) -> None:
        if os.environ.get("RANK", "0") not in ("", "0"):
            return
        line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}"
        if self.echo:
            print(line, flush=True)
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")


def progress_callback(log: Callable[[str], None], flops_tok: float, every: int = 10):
    """A TrainerCallback writing start, every `every` steps, and each epoch's end to `log`."""
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
            if state.global_step % every and state.global_step not in (state.max_steps, 1):
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
