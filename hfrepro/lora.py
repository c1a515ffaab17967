"""LoRA (Hu et al. 2021), with peft: which modules get adapters, the `LoraConfig`, and how many parameters train.

    from hfrepro.lora import LoraArguments, lora_config, count_parameters
    peft_config = lora_config(model, LoraArguments(r=8, alpha=16, target_modules="attention"))
    trainer = SFTTrainer(model=model, peft_config=peft_config, ...)     # TRL wraps the model with peft
    trainable, total = count_parameters(trainer.model)

A LoRA adapter adds, beside a frozen weight W (d x k), two small matrices B (d x r) and A (r x k): the layer
computes W x + (alpha / r) B A x, and only A and B train (r * (d + k) numbers instead of d * k).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hfrepro.errors import UserError

ATTENTION_GROUPS = (["q_proj", "k_proj", "v_proj", "o_proj"],      # Llama, Mistral, Qwen, SmolLM2
                    ["c_attn", "c_proj"],                           # GPT-2 (Conv1D: fan_in_fan_out)
                    ["query", "key", "value"],                       # BERT
                    ["query_key_value", "dense"])                    # GPT-NeoX, Falcon


@dataclass
class LoraArguments:
    """LoRA hyper-parameters (the ones people tune)."""
    lora_r: int = field(default=8, metadata={"help": "LoRA rank r"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch"})
    lora_target_modules: str = field(default="attention", metadata={
        "help": "attention (q/k/v/o found by name) | all-linear | comma-separated module names"})
    lora_layers: int = field(default=0, metadata={
        "help": "adapters in the top N blocks only (0: every block); backpropagation then stops below them"})


def target_modules(model, which: str = "attention", top_layers: int = 0) -> list[str] | str:
    """The module names LoRA wraps: the attention projections, every linear layer ("all-linear"), or the
    names given (comma-separated). With `top_layers`, only those of the top blocks."""
    which = (which or "attention").strip()
    names = [n for n, _ in model.named_modules()]
    leaves = {n.rsplit(".", 1)[-1] for n in names}
    if which == "all-linear":
        found: list[str] | str = "all-linear"
    elif which == "attention":
        group = next((g for g in ATTENTION_GROUPS if set(g) <= leaves), None)
        if group is None:
            raise UserError("cannot find the attention projections of this model for LoRA",
                            fix="pass --lora_target_modules all-linear, or name the modules (comma-separated)")
        found = group
    else:
        found = [s.strip() for s in which.split(",") if s.strip()]
    if not top_layers:
        return found
    n_layers = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    if not n_layers or top_layers >= n_layers:
        return found
    top = {str(i) for i in range(n_layers - top_layers, n_layers)}
    linear = _linear_names(model) if found == "all-linear" else None
    picked = []
    for n in names:
        parts = n.split(".")
        in_top = any(p in top and parts[i - 1] in ("layers", "h", "layer", "blocks") for i, p in enumerate(parts) if i)
        if in_top and (n in linear if linear is not None else parts[-1] in found):
            picked.append(n)
    return picked


def _linear_names(model) -> set[str]:
    import torch
    out = model.get_output_embeddings()
    return {n for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and m is not out} | {
        n for n, m in model.named_modules() if type(m).__name__ == "Conv1D"}


def lora_config(model, args: LoraArguments, task_type: str = "CAUSAL_LM"):
    """peft's `LoraConfig` for `model` (GPT-2's Conv1D layers get fan_in_fan_out, as peft requires)."""
    from peft import LoraConfig

    targets = target_modules(model, args.lora_target_modules, args.lora_layers)
    conv1d = any(type(m).__name__ == "Conv1D" for m in model.modules())
    return LoraConfig(task_type=task_type, r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, target_modules=targets, bias="none", fan_in_fan_out=conv1d)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters, each shared tensor counted once."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total
