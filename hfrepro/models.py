"""Model names: embedded assets, local folders, or Hub ids (only when the Hub is reachable or cached).

    from hfrepro.models import load_causal_lm, load_tokenizer, resolve
    tok = load_tokenizer("smollm2-135m-instruct")
    model = load_causal_lm("smollm2-135m-instruct")      # or "runs/clm/model", or "gpt2" with the Hub

`trust_remote_code` is never set unless the caller passes it explicitly. A LoRA adapter whose base is named by a Hub
id that an embedded model comes from (adapters trained here record HuggingFaceTB/SmolLM2-135M-Instruct) is loaded
on that embedded copy: the weights it was trained on, offline.
"""

from __future__ import annotations

from pathlib import Path

from hfrepro import assets
from hfrepro.cards import embedded_copy_of
from hfrepro.errors import UserError
from hfrepro.hubenv import require_hub

GPT_ARCHITECTURES = ("llama", "gpt2")  # the GPT blocks `hfrepro clm --architecture` trains and `hfrepro gpt1` tunes


def embedded_models() -> dict[str, str]:
    return {a.name: getattr(a, "role", "") for a in assets.ASSETS.values() if a.kind == "model"}


def _alternatives() -> str:
    return ", ".join(f"{n} ({r})" for n, r in embedded_models().items())


def resolve(name: str | Path) -> str:
    """A local folder path for embedded names and existing paths; the id itself for a usable Hub id.

    A run folder written by a recipe is its model's folder (a folder holding `model/` also resolves).
    """
    name = str(name)
    if name in assets.ASSETS:
        if assets.ASSETS[name].kind != "model":
            raise UserError(f"{name!r} is a dataset, not a model", fix=f"embedded models: {_alternatives()}")
        return str(assets.path(name))
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise UserError(f"model path is a file, not a folder: {p}",
                            fix="point at a folder holding config.json (and weights) or adapter_config.json")
        for cand in (p, p / "model"):
            if (cand / "config.json").is_file() or (cand / "adapter_config.json").is_file():
                return str(cand)
        raise UserError(f"no model in folder {p}: it has no config.json or adapter_config.json",
                        fix="point at a folder written by save_pretrained, or at a run folder with model/")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"model folder not found: {name}", fix="check the path")
    require_hub(name, "model", _alternatives())
    return name


def is_adapter(path: str) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_tokenizer(name: str, trust_remote_code: bool = False, **kw):
    from transformers import AutoTokenizer

    path = resolve(name)
    if is_adapter(path) and not (Path(path) / "tokenizer_config.json").is_file():
        path = resolve(_adapter_base(path))
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **kw)
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


def _adapter_base(path: str) -> str:
    import json
    cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise UserError("LoRA adapter does not name its base model (base_model_name_or_path is empty)",
                        where=str(Path(path) / "adapter_config.json"),
                        fix="pass the base model explicitly, or re-save the adapter from a model loaded from a folder")
    local = embedded_copy_of(base)  # HuggingFaceTB/SmolLM2-135M-Instruct -> the embedded copy it was trained on
    return str(local) if local is not None else base


def load_causal_lm(name: str, dtype: str | None = "float32", trust_remote_code: bool = False,
                   adapter: str | None = None, merge: bool = False, **kw):
    """A causal LM from any name; a LoRA adapter folder (or `adapter=`) is loaded on top of its base."""
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve(name)
    if is_adapter(path):
        adapter, path = path, resolve(_adapter_base(path))
    td = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    model = AutoModelForCausalLM.from_pretrained(path, dtype=td, trust_remote_code=trust_remote_code, **kw)
    if adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, resolve(adapter))
        if merge:
            model = model.merge_and_unload()
    return model
