"""Sharing: model cards, dataset cards, and pushing to the Hugging Face Hub with huggingface_hub's own API.

Every saved model folder carries a card written by `write_model_card` (huggingface_hub's `ModelCard` with
YAML metadata: license, base_model, datasets, language, library_name, tags, pipeline_tag and a `model-index`
holding the run's own metrics), and every recipe can push its result:

    args, hub = parse_args((MyArguments, HubArguments), config="x")
    req = hub_request(args, hub)            # right after parsing: repo id, token, Hub checked; UserError if not
    ...train..., write_model_card(run.model_dir, ...)
    if req: push_folder(run.model_dir, req)   # one commit; checkpoints never uploaded

Datasets push as dataset repositories (Parquet per split + the card): `push_dataset(dataset_dict, req,
card=...)`; `hfrepro push --dataset NAME --repo-id user/name` does it for an embedded dataset and its card
in data_cards/. Nothing here speaks HTTP itself: `HfApi.create_repo` + one `HfApi.create_commit`.

The token is read by huggingface_hub (HF_TOKEN or `hf auth login`) and only ever handed to `HfApi`; it is
never logged or written, and a push refuses to upload any file that contains it.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

# --- Hub vocabularies -------------------------------------------------------------------------------------

# https://huggingface.co/docs/hub/repositories-licenses (the identifiers a card's `license:` may use).
HUB_LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0
cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0
cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 agpl-3.0 gfdl gpl
gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql
ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2 gemma unknown other
""".split())

# The values `size_categories` may take in a dataset card.
SIZE_CATEGORIES = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B",
                   "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T")

# Fields every card in data_cards/ must carry (checked by `check_dataset_card` and the tests).
DATASET_CARD_REQUIRED = ("license", "language", "size_categories", "source")

# Written into cards where the repo id belongs; `push_folder` replaces it with the real id in the upload.
REPO_PLACEHOLDER = "path/to/this/folder"

_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def size_category(n: int) -> str:
    """The Hub's `size_categories` bucket for `n` examples."""
    bounds = [10 ** k for k in (3, 4, 5, 6, 7, 8, 9, 10, 11, 12)]
    for cat, hi in zip(SIZE_CATEGORIES, bounds):
        if n < hi:
            return cat
    return SIZE_CATEGORIES[-1]


def hub_license(licence: str | None) -> tuple[str | None, str | None]:
    """Map a licence as people write it ("CC-BY-2.5", "GPL-2.0-or-later", "public domain") to the Hub's
    identifier. Returns (license, license_name); license_name is set only for `other`."""
    if not licence:
        return None, None
    s = licence.strip().lower().replace(" ", "-")
    s = re.sub(r"-(or-later|only|\+)$", "", s).rstrip("+")
    aliases = {"public-domain": None, "bsd-3": "bsd-3-clause", "bsd-2": "bsd-2-clause", "lgpl-2.1+": "lgpl-2.1",
               "cc0": "cc0-1.0", "apache": "apache-2.0", "apache2": "apache-2.0"}
    if s in aliases:
        s = aliases[s] or ""
    if s in HUB_LICENSES:
        return s, None
    return "other", re.sub(r"[^a-z0-9.-]+", "-", licence.strip().lower()).strip("-") or "other"


# --- model cards ------------------------------------------------------------------------------------------

# Metric keys that describe the run rather than the model's quality: shown in the card's table, kept out
# of `model-index` (an evaluation result). Stages can choose exactly with `eval_metrics=`.
_BOOKKEEPING = re.compile(
    r"(seconds|_secs?$|_time$|^time|world_size|threads|(^|_)steps?$|tokens|epoch|seed|params|parameters|memory|"
    r"_mb$|_gb$|bytes|per_second|batch_size|samples|examples|rows|(^|_)count|^num_|^n_|learning_rate|(^|_)lr$|"
    r"version|device|distributed|^torch|^transformers|budget)", re.I)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def eval_metric_values(metrics: dict[str, Any] | None, keys: Sequence[str] | None = None) -> dict[str, float]:
    """The metrics that go into `model-index`: `keys` if given, else every finite number that is not
    bookkeeping (seconds, steps, tokens, world size, ...). Nested dicts are flattened with '/'."""
    flat = _flatten(metrics or {})
    if keys is not None:
        missing = [k for k in keys if k not in flat]
        if missing:
            raise ValueError(f"eval_metrics names metrics the run did not produce: {missing}")
        return {k: flat[k] for k in keys if _is_number(flat[k])}
    return {k: v for k, v in flat.items() if _is_number(v) and not _BOOKKEEPING.search(k.rsplit("/", 1)[-1])}


_AUTO_CLASSES = [  # (architecture suffix, auto class, pipeline tag)
    ("ForCausalLM", "AutoModelForCausalLM", "text-generation"),
    ("LMHeadModel", "AutoModelForCausalLM", "text-generation"),
    ("ForMaskedLM", "AutoModelForMaskedLM", "fill-mask"),
    ("ForConditionalGeneration", "AutoModelForSeq2SeqLM", "text2text-generation"),
    ("ForSeq2SeqLM", "AutoModelForSeq2SeqLM", "text2text-generation"),
    ("ForSequenceClassification", "AutoModelForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "AutoModelForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "AutoModelForQuestionAnswering", "question-answering"),
    ("Model", "AutoModel", "feature-extraction"),
]


def _read_json(p: Path) -> dict:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _auto_class(model_dir: Path) -> tuple[str | None, str | None]:
    archs = _read_json(model_dir / "config.json").get("architectures") or []
    for arch in archs:
        for suffix, cls, tag in _AUTO_CLASSES:
            if arch.endswith(suffix):
                return cls, tag
    return None, None


def hub_base_model(name_or_path: str | None) -> str | None:
    """The Hub id to put in `base_model:` for what a model was trained from, or None if there is none.

    A Hub id is kept; an embedded model name or a local folder maps to the `base_model` its own card names
    (the embedded SmolLM2 folder's card names HuggingFaceTB/SmolLM2-135M-Instruct); anything else -> None.
    """
    if not name_or_path:
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    p = Path(name_or_path).expanduser()
    if not p.exists():
        try:
            from hfrepro import assets
            if name_or_path in assets.ASSETS:
                p = assets.ASSETS[name_or_path].dir
        except Exception:  # noqa: BLE001 - the registry is optional here
            pass
    if p.exists():
        readme = p / "README.md" if p.is_dir() else None
        if readme is not None and readme.is_file():
            base = _card_metadata(readme.read_text(encoding="utf-8")).get("base_model")
            if isinstance(base, list):
                base = base[0] if base else None
            return base if isinstance(base, str) and _valid_repo_id(base) else None
        return None
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        return None
    return name_or_path if "/" in name_or_path else None


def _valid_repo_id(s: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    try:
        validate_repo_id(s)
    except HFValidationError:
        return False
    return "/" in s


def _card_metadata(text: str) -> dict:
    m = re.match(r"^\s*---\s*\n(.*?)\n---\s*(\n|$)", text, flags=re.S)
    if not m:
        return {}
    try:
        d = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return {}
    return d if isinstance(d, dict) else {}


def _load_snippet(model_dir: Path | None, base_model: str | None, base_ref: str | None) -> str:
    repo = f'"{REPO_PLACEHOLDER}"'
    if model_dir is not None and (model_dir / "adapter_config.json").exists():
        task = _read_json(model_dir / "adapter_config.json").get("task_type") or "CAUSAL_LM"
        cls = {"SEQ_CLS": "AutoModelForSequenceClassification", "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
               "TOKEN_CLS": "AutoModelForTokenClassification"}.get(task, "AutoModelForCausalLM")
        base = f'"{base_model or base_ref or "BASE_MODEL"}"'
        return (f"from peft import PeftModel\nfrom transformers import {cls}, AutoTokenizer\n\n"
                f"base = {cls}.from_pretrained({base})\nmodel = PeftModel.from_pretrained(base, {repo})\n"
                f"tokenizer = AutoTokenizer.from_pretrained({repo})")
    cls, tag = _auto_class(model_dir) if model_dir is not None else (None, None)
    if cls:
        tok = ""
        if model_dir is not None and any((model_dir / f).exists() for f in ("tokenizer.json", "tokenizer_config.json",
                                                                            "vocab.txt", "tokenizer.model")):
            tok = f"\ntokenizer = AutoTokenizer.from_pretrained({repo})"
        code = f"from transformers import {cls}, AutoTokenizer\n\nmodel = {cls}.from_pretrained({repo}){tok}"
        if tag == "text-generation" and tok:
            code += ('\n\ninputs = tokenizer("To be, or not to be", return_tensors="pt")\n'
                     "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=20)[0]))")
        return code
    return ("from huggingface_hub import snapshot_download\n\n"
            f"folder = snapshot_download({repo})  # then open the files as described above")


_DEFAULT_USE = ("Learning and experimentation: hfrepro reproduces, step by step and at a scale a laptop can run, "
                "ideas on the road from word2vec to ChatGPT. This model shows one of them working, measured.")
_DEFAULT_LIMITS = ("Trained briefly on a small corpus: it is a teaching artefact, not a production model. Expect "
                   "its outputs to be often wrong, repetitive or out of context, and to reflect the biases and "
                   "the age of its training text. It was evaluated only on the numbers listed above.")


def model_card(*, title: str, license: str | None = None, base_model: str | None = None,
               datasets: Sequence[str] = (), language: Sequence[str] = (), pipeline_tag: str | None = None,
               tags: Sequence[str] = (), library_name: str | None = "transformers", description: str = "",
               metrics: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
               usage: str | None = None, limits: str | None = None, model_dir: str | Path | None = None,
               eval_metrics: Sequence[str] | None = None, eval_dataset: str | None = None,
               eval_split: str | None = None, task: str | None = None, how_to_load: str | None = None,
               command: str | None = None):
    """Build a `huggingface_hub.ModelCard` (see `write_model_card` for the arguments)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from hfrepro.config import resolved

    model_dir = Path(model_dir) if model_dir is not None else None
    adapter = _read_json(model_dir / "adapter_config.json") if model_dir is not None else {}
    base_ref = base_model or adapter.get("base_model_name_or_path")  # what the model was made from, as given
    base_id = hub_base_model(base_ref)
    auto_cls, auto_tag = _auto_class(model_dir) if model_dir is not None else (None, None)
    pipeline_tag = pipeline_tag or auto_tag
    lic, lic_name = hub_license(license)
    tags = list(tags) + (["lora", "peft"] if adapter else [])
    if adapter and library_name == "transformers":
        library_name = "peft"
    extra: dict[str, Any] = {}
    if lic_name:
        extra["license_name"] = lic_name
    if base_id:
        extra["base_model_relation"] = "adapter" if adapter else "finetune"

    values = eval_metric_values(metrics, eval_metrics)
    results = None
    if values:
        ds = eval_dataset or (datasets[0] if datasets else "custom")
        results = [EvalResult(task_type=task or pipeline_tag or "other", dataset_type=ds, dataset_name=ds,
                              dataset_split=eval_split, metric_type=k.replace("/", "_"), metric_name=k,
                              metric_value=float(v) if isinstance(v, float) else v)
                   for k, v in values.items()]
    data = ModelCardData(license=lic, base_model=base_id, datasets=list(datasets) or None,
                         language=list(language) or None, pipeline_tag=pipeline_tag,
                         tags=sorted(set(["hfrepro", *tags])), library_name=library_name,
                         model_name=title if results else None, eval_results=results, **extra)

    parts = [f"# {title}", ""]
    if description:
        parts += [description.strip(), ""]
    if adapter:
        parts += [f"This folder is a **LoRA adapter** (peft), not a full model. Its base model is "
                  f"`{base_id or base_ref}`" + (f" (trained from `{base_ref}`)" if base_id and base_ref != base_id
                                                 else "") + ": load the base first, then the adapter.", ""]
    elif base_ref:
        parts += [f"Fine-tuned from `{base_ref}`" + (f" (`{base_id}` on the Hub)." if base_id and base_id != base_ref
                                                     else "."), ""]
    flat = _flatten(metrics or {})
    if flat:
        intro = "Measured by the run that produced this model."
        if values:
            ds = eval_dataset or (datasets[0] if datasets else "custom")
            intro += (f" {', '.join(f'`{k}`' for k in values)} also appear in the card's `model-index` metadata "
                      f"(dataset `{ds}`" + (f", split `{eval_split}`" if eval_split else "") + ").")
        parts += ["## Results", "", intro, "", "| metric | value |", "|---|---|"]
        parts += [f"| {k} | {_fmt(v)} |" for k, v in flat.items()]
        parts.append("")
    parts += ["## How to load", "", "```python",
              how_to_load or _load_snippet(model_dir, base_id, base_ref), "```", ""]
    parts += ["## Intended use", "", (usage or _DEFAULT_USE).strip(), ""]
    parts += ["## Limits", "", (limits or _DEFAULT_LIMITS).strip(), ""]
    parts += ["## How it was trained", ""]
    if command:
        parts += ["```bash", command, "```", ""]
    if config:
        parts += ["The resolved configuration of the run (secrets redacted):", "", "```yaml",
                  yaml.safe_dump(resolved(_Obj(config)), sort_keys=True, allow_unicode=True).strip(), "```", ""]
    elif not command:
        parts += ["See the description above.", ""]
    parts += ["Made with hfrepro (the road from word2vec to ChatGPT on the Hugging Face stack).", ""]
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(parts))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def write_model_card(model_dir: str | Path, *, title: str, license: str | None = None,
                     base_model: str | None = None, datasets: Sequence[str] = (), language: Sequence[str] = (),
                     pipeline_tag: str | None = None, tags: Sequence[str] = (), library_name: str = "transformers",
                     description: str = "", metrics: dict[str, float] | None = None,
                     config: dict[str, Any] | None = None, usage: str | None = None,
                     limits: str | None = None, eval_metrics: Sequence[str] | None = None,
                     eval_dataset: str | None = None, eval_split: str | None = None, task: str | None = None,
                     how_to_load: str | None = None, command: str | None = None) -> Path:
    """Write README.md into `model_dir` with huggingface_hub's `ModelCard` (atomically).

    license: a Hub licence id or a common spelling ("Apache-2.0", "CC-BY-2.5"); unknown -> `other` + name.
    base_model: what the model was trained from: a Hub id, an embedded model name or a local folder (mapped to
        the Hub id its card names). LoRA adapters (adapter_config.json present) take it from the adapter
        config when not given, and their card says how to load base + adapter.
    datasets: Hub dataset ids (or embedded dataset names) the model was trained on.
    metrics: the run's own numbers (metrics.json). All appear in the card's table; the quality metrics
        (`eval_metrics`, default: every finite number that is not bookkeeping such as seconds, steps, tokens)
        go into `model-index` as eval results on `eval_dataset` (default datasets[0]) / `eval_split`.
    task: the model-index task type (default: pipeline_tag, itself guessed from config.json's architecture).
    config: the resolved config of the run ("how it was trained"); keys that look like tokens are redacted.
    usage / limits: intended use and limits (sensible defaults for a small teaching model otherwise).
    how_to_load: a Python snippet replacing the generated one; command: the command that trained it.
    """
    from hfrepro.fsutil import atomic_write_text

    card = model_card(title=title, license=license, base_model=base_model, datasets=datasets, language=language,
                      pipeline_tag=pipeline_tag, tags=tags, library_name=library_name, description=description,
                      metrics=metrics, config=config, usage=usage, limits=limits, model_dir=model_dir,
                      eval_metrics=eval_metrics, eval_dataset=eval_dataset, eval_split=eval_split, task=task,
                      how_to_load=how_to_load, command=command)
    return atomic_write_text(Path(model_dir) / "README.md", str(card).rstrip("\n") + "\n")


class _Obj:
    def __init__(self, d: dict):
        self._d = d

    def to_dict(self) -> dict:
        return dict(self._d)


# --- dataset cards ----------------------------------------------------------------------------------------

def dataset_card(*, title: str, license: str, language: Sequence[str], source: Sequence[str] | str,
                 num_examples: int, description: str, how_built: str, splits: dict[str, int] | None = None,
                 columns: dict[str, str] | None = None, limits: str = "", task_categories: Sequence[str] = (),
                 tags: Sequence[str] = (), multilinguality: str | None = None, extra: str = "",
                 pretty_name: str | None = None):
    """Build a `huggingface_hub.DatasetCard` with the fields data_cards/ requires (license, language,
    size_categories, source) and the body sections: description, how it was built, splits, columns, limits.

    Stages use it for the datasets they build (preference pairs, few-shot tasks, ...): write it to
    data_cards/<name>.md once, and pass the same card to `push_dataset`.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    lic, lic_name = hub_license(license)
    kw: dict[str, Any] = {"source": [source] if isinstance(source, str) else list(source)}
    if lic_name:
        kw["license_name"] = lic_name
    data = DatasetCardData(license=lic, language=list(language), size_categories=[size_category(num_examples)],
                           task_categories=list(task_categories) or None, multilinguality=multilinguality,
                           pretty_name=pretty_name or title, tags=sorted(set(["hfrepro", *tags])), **kw)
    parts = [f"# {title}", "", description.strip(), "", "## How it was built", "", how_built.strip(), ""]
    if splits:
        parts += ["## Splits", "", "| split | examples |", "|---|---|"]
        parts += [f"| {k} | {v:,} |" for k, v in splits.items()] + [f"| total | {sum(splits.values()):,} |", ""]
    if columns:
        parts += ["## Columns", "", "| column | meaning |", "|---|---|"]
        parts += [f"| `{k}` | {v} |" for k, v in columns.items()] + [""]
    if extra:
        parts += [extra.strip(), ""]
    parts += ["## Limits", "", (limits or "See the description.").strip(), ""]
    return DatasetCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(parts))


def write_dataset_card(path: str | Path, **kw: Any) -> Path:
    """`dataset_card(**kw)` written to `path` (e.g. data_cards/<name>.md), atomically."""
    from hfrepro.fsutil import atomic_write_text
    return atomic_write_text(path, str(dataset_card(**kw)).rstrip("\n") + "\n")


def check_dataset_card(card: str | Path, required: Sequence[str] = DATASET_CARD_REQUIRED) -> list[str]:
    """Problems with a dataset card (a path or its text), parsed by huggingface_hub's `DatasetCard`;
    an empty list when it is valid. Checks the fields data_cards/ requires and their values."""
    from huggingface_hub import DatasetCard

    text = Path(card).read_text(encoding="utf-8") if isinstance(card, Path) or (
        isinstance(card, str) and "\n" not in card and Path(card).is_file()) else str(card)
    if not re.match(r"^\s*---\s*\n", text):
        return ["no YAML metadata block at the top (--- ... ---)"]
    try:
        parsed = DatasetCard(text)
        meta = parsed.data.to_dict()
    except Exception as e:  # noqa: BLE001 - any parser failure is the finding
        return [f"metadata does not parse: {type(e).__name__}: {e}"]
    problems = [f"missing required field {k!r}" for k in required if not meta.get(k)]
    problems += _check_license(meta)
    langs = meta.get("language")
    for lang in ([langs] if isinstance(langs, str) else langs or []):
        if not isinstance(lang, str) or not _LANG.match(lang):
            problems.append(f"language {lang!r} is not an ISO 639 code (e.g. en, ko, fr)")
    sizes = meta.get("size_categories")
    for s in ([sizes] if isinstance(sizes, str) else sizes or []):
        if s not in SIZE_CATEGORIES:
            problems.append(f"size_categories {s!r} is not one of {', '.join(SIZE_CATEGORIES)}")
    src = meta.get("source")
    if src is not None and not (isinstance(src, str) or (isinstance(src, list) and all(
            isinstance(x, str) and x.strip() for x in src))):
        problems.append("source must be a string or a list of strings (package==version, URL, ...)")
    if not re.search(r"^# \S", parsed.text, flags=re.M):
        problems.append("the body has no '# Title' heading")
    if len(parsed.text.split()) < 30:
        problems.append("the body is too short to say how the data was built, its splits and its limits")
    return problems


def _check_license(meta: dict) -> list[str]:
    lic = meta.get("license")
    out = []
    for one in ([lic] if isinstance(lic, str) else lic or []):
        if one not in HUB_LICENSES:
            out.append(f"license {one!r} is not a Hub licence identifier (see HUB_LICENSES); use 'other' "
                       f"with license_name")
        if one == "other" and not meta.get("license_name"):
            out.append("license 'other' needs a license_name")
    return out


def check_model_card(card: str | Path) -> list[str]:
    """Problems with a model card (path or text) parsed by huggingface_hub's `ModelCard`: metadata that does
    not parse, an invalid model-index, a licence the Hub does not know, a base_model that is not a Hub id."""
    from huggingface_hub import ModelCard

    text = Path(card).read_text(encoding="utf-8") if isinstance(card, Path) else str(card)
    if not re.match(r"^\s*---\s*\n", text):
        return ["no YAML metadata block at the top (--- ... ---)"]
    try:
        parsed = ModelCard(text)
        meta = parsed.data.to_dict()
    except Exception as e:  # noqa: BLE001
        return [f"metadata does not parse: {type(e).__name__}: {e}"]
    problems = _check_license(meta)
    bases = meta.get("base_model")
    for b in ([bases] if isinstance(bases, str) else bases or []):
        if not _valid_repo_id(b):
            problems.append(f"base_model {b!r} is not a Hub repo id (user/name)")
    if "model-index" in meta and not parsed.data.eval_results:
        problems.append("model-index present but holds no results")
    return problems


# --- push requests ----------------------------------------------------------------------------------------
# Recipes WITHOUT TrainingArguments add `HubArguments` to their dataclasses; recipes WITH TrainingArguments
# (or a TRL config) use its own push_to_hub / hub_model_id / hub_private_repo fields. Either way:
#
#     req = hub_request(*parsed_args)     # right after parsing: checks token, repo id, Hub; raises UserError
#     ...train...
#     if req: push_folder(run.model_dir, req)
#
# `hub_request` also turns `push_to_hub` off on TrainingArguments (the Trainer would otherwise reach the Hub
# when it is built and push checkpoints half-way) and takes `hub_token` out of them (it would be pickled
# into every checkpoint's training_args.bin).


@dataclass
class HubArguments:
    push_to_hub: bool = field(default=False, metadata={"help": "push the result to the Hugging Face Hub"})
    hub_model_id: str | None = field(default=None, metadata={"help": "repo id on the Hub, e.g. user/name"})
    private: bool = field(default=False, metadata={"help": "create the Hub repo as private"})


@dataclass
class HubRequest:
    repo_id: str
    private: bool
    token: str | None = field(default=None, repr=False)  # only set when given explicitly (hub_token)

    def __getstate__(self):  # never pickle a token
        return {**self.__dict__, "token": None}


def hub_request(*parsed: Any, default_name: str | None = None) -> HubRequest | None:
    """Read push settings from parsed argument dataclasses; validate them before any work starts.

    Returns None when no push is asked for. `default_name` (e.g. "hfrepro-sft") is used, under the token's
    user name, when --push_to_hub comes without --hub_model_id.
    """
    push, repo_id, private, token = False, None, False, None
    for a in parsed:
        if a is None:
            continue
        push = push or bool(getattr(a, "push_to_hub", False))
        repo_id = repo_id or getattr(a, "hub_model_id", None)
        private = private or bool(getattr(a, "private", False)) or bool(getattr(a, "hub_private_repo", False) or False)
        if getattr(a, "hub_token", None):
            token = token or a.hub_token
            a.hub_token = None  # keep it out of training_args.bin and saved configs
        if hasattr(a, "push_to_hub") and hasattr(a, "per_device_train_batch_size"):
            a.push_to_hub = False  # we push once, at the end, ourselves
    if not push:
        return None
    return validate_push(repo_id or default_name, private, token=token)


def validate_push(repo_id: str | None, private: bool = False, token: str | None = None,
                  repo_type: str = "model") -> HubRequest:
    """Check everything a push needs, before any work or upload starts; raise one clear UserError if not.

    Order: repo id syntax, a token, offline mode / the Hub reachable, then `whoami` (token valid, may write,
    may write to that namespace). A repo id without a namespace gets the token's user name.
    """
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from hfrepro.errors import UserError
    from hfrepro.hubenv import endpoint

    flag = "--hub_model_id" if repo_type == "model" else "--repo-id"
    if not repo_id:
        raise UserError("pushing to the Hub needs a repo id", fix=f"pass {flag} user/name")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise UserError(f"invalid Hub repo id {repo_id!r}: {e}",
                        fix="use the form user/name: letters, digits, '-', '_', '.'; at most 96 characters") from None
    explicit = token
    token = token or get_token()
    if not token:
        raise UserError("no Hugging Face token: pushing needs one (nothing was uploaded)",
                        fix="run `hf auth login`, or set HF_TOKEN in the environment (hfrepro never writes it "
                            "to disk)")
    offline = [v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # what huggingface_hub itself honours
               if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")]
    if offline:
        raise UserError(f"cannot push to {repo_id!r}: offline mode is set ({'='.join([offline[0], '1'])}) "
                        "(nothing was uploaded)",
                        fix="unset those variables on a machine that reaches the Hub, or push later: "
                            f"hfrepro push RUN_DIR --repo-id {repo_id}")
    if not _reachable(endpoint()):
        raise UserError(f"cannot push to {repo_id!r}: the Hub ({endpoint()}) is not reachable from this machine "
                        "(nothing was uploaded)",
                        fix=f"push later from a machine with access: hfrepro push RUN_DIR --repo-id {repo_id}")
    who = _whoami(token, repo_id)
    user = who.get("name")
    if "/" not in repo_id:
        if not user:
            raise UserError(f"Hub repo id {repo_id!r} has no namespace", fix="use the form user/name")
        repo_id = f"{user}/{repo_id}"
    role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise UserError(f"your Hugging Face token is read-only: it cannot create or write {repo_id!r} "
                        "(nothing was uploaded)", fix="create a token with write access at "
                                                      "https://huggingface.co/settings/tokens and log in with it")
    namespaces = {user, *(o.get("name") for o in who.get("orgs") or [] if isinstance(o, dict))} - {None}
    ns = repo_id.split("/")[0]
    if namespaces and ns not in namespaces:
        raise UserError(f"your token belongs to {user!r}, which cannot write under {ns!r} (nothing was uploaded)",
                        fix=f"use one of your namespaces: {', '.join(sorted(namespaces))}, e.g. {user}/"
                            f"{repo_id.split('/')[1]}")
    return HubRequest(repo_id=repo_id, private=private, token=explicit)


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """One TCP connect to the Hub endpoint (hubenv.hub_reachable also says False under HF_DATASETS_OFFLINE,
    which does not concern pushes, and switches the process offline)."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    try:
        with socket.create_connection((u.hostname, u.port or (443 if u.scheme == "https" else 80)), timeout=timeout):
            return True
    except OSError:
        return False


def _api(token: str | None = None):
    from huggingface_hub import HfApi

    from hfrepro.hubenv import endpoint
    return HfApi(endpoint=endpoint(), token=token)


def _whoami(token: str, repo_id: str) -> dict:
    from huggingface_hub.errors import HfHubHTTPError

    from hfrepro.errors import UserError

    try:
        return _api(token).whoami(token=token)
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status == 401:
            raise UserError("the Hugging Face token was refused by the Hub (invalid or expired) "
                            "(nothing was uploaded)",
                            fix="log in again with `hf auth login`, or set a valid HF_TOKEN") from None
        raise UserError(f"cannot check the token with the Hub before pushing to {repo_id!r}: HTTP {status} "
                        "(nothing was uploaded)", fix="try again later") from None
    except OSError as e:
        raise UserError(f"cannot reach the Hub to push to {repo_id!r}: {type(e).__name__} (nothing was uploaded)",
                        fix="check the connection, or push later: hfrepro push RUN_DIR --repo-id " + repo_id) from None


# --- what a push uploads ----------------------------------------------------------------------------------

# Never uploaded: training state (resumable checkpoints, optimizer, RNG) and scratch files.
EXCLUDE_DIRS = {"checkpoints", "runs", "__pycache__", ".git", ".cache", "wandb"}
EXCLUDE_FILES = re.compile(r"^(\..*|.*\.tmp|.*\.lock|optimizer\.(pt|bin)|scheduler\.pt|rng_state.*\.pth|"
                           r"training_args\.bin|trainer_state\.json|scaler\.pt)$")
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".kv"}  # .kv: gensim KeyedVectors.save
RUN_RECORD = ("config.yaml", "metrics.json", "log.jsonl")  # a run folder's record, uploaded under run/
MODEL_FILES = ("config.json", "adapter_config.json")


@dataclass
class UploadPlan:
    """Exactly what one commit will upload: (path in repo, local file or bytes)."""
    repo_type: str
    files: list[tuple[str, Path | bytes]]
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [p for p, _ in self.files]

    def size(self) -> int:
        return sum(len(s) if isinstance(s, bytes) else s.stat().st_size for _, s in self.files)

    def describe(self) -> str:
        from hfrepro.fsutil import human_size
        lines = [f"{len(self.files)} file(s), {human_size(self.size())}, as one commit to a {self.repo_type} repo:"]
        for p, s in self.files:
            n = len(s) if isinstance(s, bytes) else s.stat().st_size
            lines.append(f"  {p}  ({human_size(n)})")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _walk(folder: Path) -> Iterable[Path]:
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part in EXCLUDE_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if p.is_file() and not EXCLUDE_FILES.match(p.name):
            yield p


def is_model_folder(folder: Path) -> bool:
    return any((folder / f).is_file() for f in MODEL_FILES) or any(folder.glob("*.safetensors"))


def plan_upload(folder: str | Path, repo_type: str = "model", repo_id: str | None = None) -> UploadPlan:
    """Decide and check what pushing `folder` uploads, without any network. Raises UserError on problems.

    A run folder (config.yaml + model/) uploads model/ at the repo root and its record (config.yaml,
    metrics.json, log.jsonl, *.png, *.md) under run/. A model folder inside a run folder takes the run's
    record along the same way. Checkpoints, optimizer state and hidden/temporary files are never uploaded.
    """
    from hfrepro.errors import UserError

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"nothing to push: {folder} is not a folder", fix="give a run folder or a model folder")
    files: list[tuple[str, Path | bytes]] = []
    notes: list[str] = []
    run_dir = None
    root = folder
    if repo_type == "model":
        if not is_model_folder(folder) and is_model_folder(folder / "model"):
            run_dir, root = folder, folder / "model"
        elif is_model_folder(folder) and (folder.parent / "config.yaml").is_file() and (
                folder.parent / "metrics.json").is_file():
            run_dir = folder.parent
        if not is_model_folder(root) and not any(_walk(root)):
            raise UserError(f"nothing to push in {folder}: no model files", where=str(folder),
                            fix="give a run folder holding model/, or a model folder (config.json, weights)")
    files += [(p.relative_to(root).as_posix(), p) for p in _walk(root)]
    if run_dir is not None:
        for p in sorted(run_dir.iterdir()):
            if p.is_file() and (p.name in RUN_RECORD or p.suffix in (".png", ".md")) and not EXCLUDE_FILES.match(p.name):
                files.append((f"run/{p.name}", p))
        notes.append(f"the run's record from {run_dir} goes under run/ (checkpoints are not uploaded)")
    if not files:
        raise UserError(f"nothing to push in {folder}: the folder is empty", where=str(folder))

    paths = {p for p, _ in files}
    if repo_type == "model":
        bad = [p for p, s in files if isinstance(s, Path) and _is_pickle(s)]
        if bad:
            raise UserError(f"refusing to push pickled weights ({', '.join(bad[:4])}): they can run code when "
                            "loaded", where=str(folder),
                            fix="save with safetensors: model.save_pretrained(dir, safe_serialization=True)")
        if "README.md" not in paths:
            files.append(("README.md", _fallback_card(root, run_dir, repo_id).encode()))
            notes.append("the folder has no README.md: a minimal model card was generated for the upload "
                         "(write one with hfrepro.hub.write_model_card)")
    elif "README.md" not in paths:
        raise UserError(f"a dataset repo needs its card: no README.md in {folder}", where=str(folder),
                        fix="export with hfrepro.hub.export_dataset(data, folder, card=...)")
    return UploadPlan(repo_type, sorted(files, key=lambda x: x[0]), notes)


def _is_pickle(p: Path) -> bool:
    if p.suffix.lower() in PICKLE_SUFFIXES:
        return True
    if p.suffix.lower() in (".bin", ".model"):
        with open(p, "rb") as f:
            head = f.read(4)
        return head.startswith(b"PK\x03\x04") or (len(head) > 1 and head[0] == 0x80 and 1 <= head[1] <= 5)
    return False


def _fallback_card(model_dir: Path, run_dir: Path | None, repo_id: str | None) -> str:
    metrics = _read_json(run_dir / "metrics.json") if run_dir else {}
    config = None
    if run_dir and (run_dir / "config.yaml").is_file():
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    title = (repo_id or model_dir.resolve().name).split("/")[-1]
    return str(model_card(title=title, metrics=metrics, config=config, model_dir=model_dir,
                          description="Pushed with `hfrepro push`; the run did not write its own card."))


def _known_tokens(extra: str | None = None) -> list[str]:
    from huggingface_hub import get_token
    found = {extra, get_token(), os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")}
    return sorted(t for t in found if t and len(t) >= 8)


def _contains(path_or_bytes: Path | bytes, needles: list[bytes]) -> bool:
    if isinstance(path_or_bytes, bytes):
        return any(n in path_or_bytes for n in needles)
    keep = max(len(n) for n in needles) - 1
    tail = b""
    with open(path_or_bytes, "rb") as f:
        while chunk := f.read(1 << 22):
            buf = tail + chunk
            if any(n in buf for n in needles):
                return True
            tail = buf[-keep:] if keep else b""
    return False


def check_no_token(plan: UploadPlan, token: str | None = None) -> None:
    """Refuse to upload a file that contains the Hugging Face token (of the request or the environment)."""
    from hfrepro.errors import UserError

    needles = [t.encode() for t in _known_tokens(token)]
    if not needles:
        return
    leaked = [p for p, src in plan.files if _contains(src, needles)]
    if leaked:
        raise UserError(f"refusing to push: {', '.join(leaked[:4])} contain(s) your Hugging Face token",
                        fix="remove the token from those files (and revoke it if it was shared); nothing was "
                            "uploaded")


def _operations(plan: UploadPlan, repo_id: str) -> list:
    from huggingface_hub import CommitOperationAdd

    ops = []
    for path, src in plan.files:
        if path == "README.md":  # show the real repo id in the card's loading snippet
            text = src.decode() if isinstance(src, bytes) else src.read_text(encoding="utf-8")
            src = text.replace(REPO_PLACEHOLDER, repo_id).encode()
        ops.append(CommitOperationAdd(path_in_repo=path, path_or_fileobj=src if isinstance(src, bytes) else str(src)))
    return ops


def _check_card(plan: UploadPlan) -> None:
    from hfrepro.errors import UserError

    src = dict(plan.files).get("README.md")
    if src is None:
        return
    text = src.decode() if isinstance(src, bytes) else src.read_text(encoding="utf-8")
    problems = (check_model_card(text) if plan.repo_type == "model"
                else check_dataset_card(text, required=("license",)))
    if problems:
        raise UserError("the repo card (README.md) is not valid: " + "; ".join(problems),
                        where=str(src) if isinstance(src, Path) else "README.md", fix="fix the card, then push again")


def push_plan(plan: UploadPlan, req: HubRequest, commit_message: str = "Upload from hfrepro") -> str:
    """Upload `plan` as ONE commit (create the repo if needed). Returns the commit URL.

    All checks (card, token in files) run before anything is sent. If the commit fails and this call
    created the repo, the empty repo is deleted again, so a failed push leaves nothing behind.
    """
    from huggingface_hub.errors import HfHubHTTPError

    from hfrepro.errors import UserError

    _check_card(plan)
    check_no_token(plan, req.token)
    api = _api(req.token)
    created = False
    try:
        existed = api.repo_exists(req.repo_id, repo_type=plan.repo_type)
        api.create_repo(req.repo_id, repo_type=plan.repo_type, private=req.private, exist_ok=True)
        created = not existed
        info = api.create_commit(req.repo_id, operations=_operations(plan, req.repo_id),
                                 commit_message=commit_message, repo_type=plan.repo_type)
    except (HfHubHTTPError, OSError, ValueError) as e:
        cleanup = ""
        if created:
            try:
                api.delete_repo(req.repo_id, repo_type=plan.repo_type)
                cleanup = "; the repo this push had created was deleted again"
            except Exception:  # noqa: BLE001 - report the original failure
                cleanup = "; the (empty) repo this push created may remain"
        status = getattr(getattr(e, "response", None), "status_code", None)
        why = f"HTTP {status}" if status else type(e).__name__
        raise UserError(f"push to {req.repo_id!r} failed ({why}): nothing was committed{cleanup}",
                        fix="check your access to that namespace and the connection, then run the same command "
                            "again") from None
    return str(getattr(info, "commit_url", info))


def push_folder(folder: str | Path, req: HubRequest, repo_type: str = "model",
                commit_message: str = "Upload from hfrepro") -> str:
    """Push a run folder, model folder or exported dataset folder as one commit. Returns the commit URL."""
    plan = plan_upload(folder, repo_type=repo_type, repo_id=req.repo_id)
    return push_plan(plan, req, commit_message=commit_message)


# --- datasets ---------------------------------------------------------------------------------------------

def _card_text(card: Any) -> str:
    if isinstance(card, Path) or (isinstance(card, str) and "\n" not in card and card.endswith(".md")):
        return Path(card).read_text(encoding="utf-8")
    return str(card)


def export_dataset(data: Any, folder: str | Path, card: Any) -> Path:
    """Write `data` (a DatasetDict or Dataset) as a Hub dataset repository folder, atomically:
    data/<split>-00000-of-00001.parquet per split, and README.md = `card` (a path, text or DatasetCard)
    with a `configs:` entry mapping each split to its file, so `load_dataset("user/name")` finds them."""
    from datasets import Dataset, DatasetDict
    from huggingface_hub import DatasetCard

    from hfrepro.errors import UserError
    from hfrepro.fsutil import atomic_dir

    dd = DatasetDict({"train": data}) if isinstance(data, Dataset) else data
    parsed = DatasetCard(_card_text(card))
    meta = parsed.data.to_dict()
    problems = check_dataset_card(str(parsed))
    if problems:
        raise UserError("the dataset card is not valid: " + "; ".join(problems), fix="fix the card")
    meta["configs"] = [{"config_name": "default",
                        "data_files": [{"split": s, "path": f"data/{s}-*"} for s in dd]}]
    from huggingface_hub import DatasetCardData
    parsed.data = DatasetCardData(**meta)
    with atomic_dir(folder) as tmp:
        (tmp / "data").mkdir()
        for split, ds in dd.items():
            ds.to_parquet(str(tmp / "data" / f"{split}-00000-of-00001.parquet"))
        (tmp / "README.md").write_text(str(parsed), encoding="utf-8")
    return Path(folder)


def push_dataset(data: Any, req: HubRequest, card: Any, commit_message: str = "Upload dataset from hfrepro") -> str:
    """Export `data` with its card (see `export_dataset`) and push it as a dataset repo, in one commit."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hfrepro-push-") as tmp:
        folder = export_dataset(data, Path(tmp) / "repo", card)
        return push_folder(folder, req, repo_type="dataset", commit_message=commit_message)
