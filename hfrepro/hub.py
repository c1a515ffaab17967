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
