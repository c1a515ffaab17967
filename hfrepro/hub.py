"""Model cards (and, with the sharing issue, pushing to the Hub).

`write_model_card` writes README.md into a model folder with huggingface_hub's own `ModelCard`: YAML
metadata plus how it was made, how to load it, and its limits. Never pass secrets in `config`: keys that
look like tokens are redacted anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import yaml


def write_model_card(model_dir: str | Path, *, title: str, license: str | None = None,
                     base_model: str | None = None, datasets: Sequence[str] = (), language: Sequence[str] = (),
                     pipeline_tag: str | None = None, tags: Sequence[str] = (), library_name: str = "transformers",
                     description: str = "", metrics: dict[str, float] | None = None,
                     config: dict[str, Any] | None = None, usage: str | None = None,
                     limits: str | None = None) -> Path:
    from huggingface_hub import ModelCard, ModelCardData

    from hfrepro.config import resolved
    from hfrepro.fsutil import atomic_write_text

    model_dir = Path(model_dir)
    data = ModelCardData(license=license, base_model=base_model, datasets=list(datasets) or None,
                         language=list(language) or None, pipeline_tag=pipeline_tag,
                         tags=sorted(set(["hfrepro", *tags])), library_name=library_name)
    loader = ("from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained(path)"
              if (model_dir / "adapter_config.json").exists() else
              "from transformers import AutoModel, AutoTokenizer\n"
              "model = AutoModel.from_pretrained(path)  # or the matching AutoModelFor... class\n"
              "tokenizer = AutoTokenizer.from_pretrained(path)")
    parts = [f"# {title}", "", description or "", ""]
    if metrics:
        parts += ["## Results (measured by the run that produced this folder)", "",
                  "| metric | value |", "|---|---|"]
        parts += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()]
        parts.append("")
    parts += ["## How to load", "", "```python", 'path = "."  # this folder, or its Hub repo id', loader, "```", ""]
    if usage:
        parts += ["## Intended use", "", usage, ""]
    if limits:
        parts += ["## Limits", "", limits, ""]
    if config:
        parts += ["## Training configuration", "", "```yaml",
                  yaml.safe_dump(resolved(_Obj(config)), sort_keys=True, allow_unicode=True).strip(), "```", ""]
    card = ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(parts))
    return atomic_write_text(model_dir / "README.md", str(card))


class _Obj:
    def __init__(self, d: dict):
        self._d = d

    def to_dict(self) -> dict:
        return dict(self._d)


# --- pushing ----------------------------------------------------------------------------------------------
# Recipes WITHOUT TrainingArguments add `HubArguments` to their dataclasses; recipes WITH TrainingArguments
# (or a TRL config) use its own push_to_hub / hub_model_id / hub_private_repo fields. Either way:
#
#     req = hub_request(*parsed_args)     # right after parsing: checks token, repo id, Hub; raises UserError
#     ...train...
#     if req: push_folder(run.model_dir, req)
#
# `hub_request` also turns `push_to_hub` off on TrainingArguments: the Trainer would otherwise try to reach
# the Hub when it is built (STACK.md) and push checkpoints half-way.

from dataclasses import dataclass, field  # noqa: E402


@dataclass
class HubArguments:
    push_to_hub: bool = field(default=False, metadata={"help": "push the result to the Hugging Face Hub"})
    hub_model_id: str | None = field(default=None, metadata={"help": "repo id on the Hub, e.g. user/name"})
    private: bool = field(default=False, metadata={"help": "create the Hub repo as private"})


@dataclass
class HubRequest:
    repo_id: str
    private: bool


def hub_request(*parsed: Any, default_name: str | None = None) -> HubRequest | None:
    """Read push settings from parsed argument dataclasses; validate them before any work starts."""
    push, repo_id, private = False, None, False
    for a in parsed:
        push = push or bool(getattr(a, "push_to_hub", False))
        repo_id = repo_id or getattr(a, "hub_model_id", None)
        private = private or bool(getattr(a, "private", False)) or bool(getattr(a, "hub_private_repo", False) or False)
        if hasattr(a, "push_to_hub") and hasattr(a, "per_device_train_batch_size"):
            a.push_to_hub = False  # we push once, at the end, ourselves
    if not push:
        return None
    return validate_push(repo_id or default_name, private)


def validate_push(repo_id: str | None, private: bool = False) -> HubRequest:
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from hfrepro.errors import UserError
    from hfrepro.hubenv import endpoint, hub_reachable

    if not repo_id:
        raise UserError("--push-to-hub needs a repo id", fix="pass --hub_model_id user/name")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise UserError(f"invalid Hub repo id {repo_id!r}: {e}", fix="use the form user/name") from None
    if "/" not in repo_id:
        raise UserError(f"Hub repo id {repo_id!r} has no namespace", fix="use the form user/name")
    if not get_token():
        raise UserError("no Hugging Face token: pushing needs one",
                        fix="run `hf auth login`, or set HF_TOKEN in the environment (it is never written to disk "
                            "by hfrepro)")
    if not hub_reachable():
        raise UserError(f"cannot push to {repo_id!r}: the Hub ({endpoint()}) is not reachable from this machine",
                        fix="push later from a machine with access: hfrepro push RUN_DIR --repo-id " + repo_id)
    return HubRequest(repo_id=repo_id, private=private)


def push_folder(folder: str | Path, req: HubRequest, repo_type: str = "model",
                commit_message: str = "Upload from hfrepro") -> str:
    """Create the repo (if needed) and upload the folder in one commit. Returns the repo URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(req.repo_id, repo_type=repo_type, private=req.private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=req.repo_id, repo_type=repo_type,
                      commit_message=commit_message, ignore_patterns=["checkpoints/*", "*.tmp", ".*"])
    return str(url)
