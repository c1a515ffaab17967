"""Model and dataset cards, written with huggingface_hub's `ModelCard` / `DatasetCard`: pure writing and
checking, no network. Every saved model folder carries a card (`write_model_card`): YAML metadata (license,
base_model, datasets, language, library_name, tags, pipeline_tag and a `model-index` holding the run's held-out
metrics) and a body (results, how to load, intended use, limits, how it was trained). Every dataset hfrepro
builds or ships has a card in data_cards/ (`dataset_card`, `check_dataset_card`).

Pushing lives in `hfrepro.hub`, at the top of the house; this module is low, so every stage can write cards.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from hfrepro.automodels import AUTO_CLASSES, MODEL_MODULES
from hfrepro.config import SECRET_FIELDS
from hfrepro.fsutil import atomic_write_json, atomic_write_text
from hfrepro.paths import DATA_CARDS_DIR, models_dir

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
AUTO_TAGS = {cls: tag for _, cls, tag in _AUTO_CLASSES}


def read_json_or_empty(p: Path) -> dict:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# transformers' own task mappings (architecture class names), in the order a folder's Auto class is looked up
_TASK_MAPPINGS = [("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "AutoModelForCausalLM"),
                  ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", "AutoModelForMaskedLM"),
                  ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", "AutoModelForSeq2SeqLM"),
                  ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", "AutoModelForSequenceClassification"),
                  ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES", "AutoModelForTokenClassification"),
                  ("MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES", "AutoModelForQuestionAnswering"),
                  ("MODEL_MAPPING_NAMES", "AutoModel")]
AUTO_TAGS["AutoModelForSeq2SeqLM"] = "text2text-generation"


def auto_class(model_dir: Path) -> tuple[str | None, str | None]:
    """(Auto class, pipeline tag) that loads a model folder, from its config.json: the transformers task mapping
    holding its architecture (MarianMTModel -> AutoModelForSeq2SeqLM), else the architecture name's suffix,
    else the Auto class hfrepro registers its own model type with (hfrepro.automodels), else `auto_map`."""
    cfg = read_json_or_empty(Path(model_dir) / "config.json")
    archs = cfg.get("architectures") or []
    if archs:
        from transformers.models.auto import modeling_auto

        for mapping, cls in _TASK_MAPPINGS:
            if any(a in getattr(modeling_auto, mapping).values() for a in archs):
                return cls, AUTO_TAGS[cls]
    for arch in archs:
        for suffix, cls, tag in _AUTO_CLASSES:
            if arch.endswith(suffix) and cfg.get("model_type") not in AUTO_CLASSES:
                return cls, tag
    own = AUTO_CLASSES.get(cfg.get("model_type"))
    if own:
        return own, AUTO_TAGS.get(own)
    for cls in cfg.get("auto_map") or {}:
        if cls in AUTO_TAGS:
            return cls, AUTO_TAGS[cls]
    return None, None


def _embedded_model_dir(name: str) -> Path | None:
    """The folder of an embedded model named `name` (e.g. smollm2-135m-instruct), if it is built."""
    if not name or "/" in name or name.startswith((".", "~")):
        return None
    d = models_dir() / name
    return d if (d / "config.json").is_file() else None


def embedded_copy_of(hub_id: str | None) -> Path | None:
    """The embedded model folder whose card names `hub_id` as its base (SmolLM2's Hub id -> the local copy)."""
    if not hub_id:
        return None
    for readme in sorted(models_dir().glob("*/README.md")):
        base = _card_metadata(readme.read_text(encoding="utf-8")).get("base_model")
        if base == hub_id or (isinstance(base, list) and hub_id in base):
            return readme.parent
    return None


def dataset_ref(name: str) -> str | None:
    """What a card's `datasets:` should say for `name`: a Hub dataset id as it is; an embedded or built dataset by
    the name of its card in data_cards/ (`word_class` -> `finetune-word-class`, the card of that task's data);
    None for anything a Hub user cannot look up (a local file)."""
    name = str(name).strip()
    if _valid_repo_id(name) and not Path(name).exists():
        return name
    stem = Path(name).name
    for suffix in (".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet"):
        stem = stem.removesuffix(suffix)
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    if not slug:
        return None
    if (DATA_CARDS_DIR / f"{slug}.md").is_file():
        return slug
    found = sorted(p.stem for p in DATA_CARDS_DIR.glob(f"*-{slug}.md"))
    return found[0] if len(found) == 1 else None


def hub_base_model(name_or_path: str | None) -> str | None:
    """The Hub id to put in `base_model:` for what a model was trained from, or None if there is none.

    A Hub id is kept; a local folder (an embedded model's, e.g. `hfrepro.models.resolve("smollm2-135m-instruct")`)
    or an embedded model's name maps to the `base_model` its own card names (HuggingFaceTB/SmolLM2-135M-Instruct);
    anything else -> None.
    """
    if not name_or_path:
        return None
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    p = Path(name_or_path).expanduser()
    if not p.exists():
        p = _embedded_model_dir(name_or_path) or p
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
        task = read_json_or_empty(model_dir / "adapter_config.json").get("task_type") or "CAUSAL_LM"
        cls = {"SEQ_CLS": "AutoModelForSequenceClassification", "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
               "TOKEN_CLS": "AutoModelForTokenClassification"}.get(task, "AutoModelForCausalLM")
        base = f'"{base_model or base_ref or "BASE_MODEL"}"'
        code = (f"from peft import PeftModel\nfrom transformers import {cls}, AutoTokenizer\n\n"
                f"base = {cls}.from_pretrained({base})\nmodel = PeftModel.from_pretrained(base, {repo})\n"
                f"tokenizer = AutoTokenizer.from_pretrained({repo})")
        if embedded_copy_of(base_model) is not None:
            code += ("\n\n# Offline, with hfrepro: the base is the embedded copy this adapter was trained on\n"
                     f"# import hfrepro.models; model = hfrepro.models.load_causal_lm({repo})")
        return code
    cls, tag = auto_class(model_dir) if model_dir is not None else (None, None)
    if cls:
        own = model_dir is not None and read_json_or_empty(model_dir / "config.json").get("model_type") in MODEL_MODULES
        tok = ""
        if model_dir is not None and any((model_dir / f).exists() for f in ("tokenizer.json", "tokenizer_config.json",
                                                                            "vocab.txt", "tokenizer.model")):
            tok = f"\ntokenizer = AutoTokenizer.from_pretrained({repo})"
        code = (("import hfrepro  # registers hfrepro's own model classes with the Auto classes (no remote code)\n"
                 if own else "") + f"from transformers import {cls}, AutoTokenizer\n\n"
                f"model = {cls}.from_pretrained({repo}){tok}")
        if tag == "text-generation" and tok:
            code += ('\n\ninputs = tokenizer("To be, or not to be", return_tensors="pt")\n'
                     "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=20)[0]))")
        return code
    return ("from huggingface_hub import snapshot_download\n\n"
            f"folder = snapshot_download({repo})  # then open the files as described above")


def _base_card(base_ref: str | None) -> dict:
    """The card metadata of the local folder (or embedded model) a model was trained from; {} if none."""
    if not base_ref:
        return {}
    p = Path(base_ref).expanduser()
    p = p if p.is_dir() else _embedded_model_dir(base_ref)
    if p is None or not (p / "README.md").is_file():
        return {}
    return _card_metadata((p / "README.md").read_text(encoding="utf-8"))


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
               command: str | None = None, more_evals: Sequence[tuple[str, str | None, Sequence[str]]] = ()):
    """Build a `huggingface_hub.ModelCard` (see `write_model_card` for the arguments)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    model_dir = Path(model_dir) if model_dir is not None else None
    adapter = read_json_or_empty(model_dir / "adapter_config.json") if model_dir is not None else {}
    base_ref = base_model or adapter.get("base_model_name_or_path")  # what the model was made from, as given
    base_id = hub_base_model(base_ref)
    auto_cls, auto_tag = auto_class(model_dir) if model_dir is not None else (None, None)
    pipeline_tag = pipeline_tag or auto_tag
    lic, lic_name = hub_license(license or _base_card(base_ref).get("license"))
    refs = [dataset_ref(d) for d in datasets]
    hub_datasets = list(dict.fromkeys(r for r in refs if r))
    local_data = [d for d, r in zip(datasets, refs) if not r]
    tags = list(tags) + (["lora", "peft"] if adapter else [])
    if adapter and library_name == "transformers":
        library_name = "peft"
    extra: dict[str, Any] = {}
    if lic_name:
        extra["license_name"] = lic_name
    if base_id:
        extra["base_model_relation"] = "adapter" if adapter else "finetune"

    ds = (dataset_ref(eval_dataset) or eval_dataset) if eval_dataset else (hub_datasets or ["custom"])[0]
    evals = [(ds, eval_split, eval_metric_values(metrics, eval_metrics))]
    evals += [(dataset_ref(d) or d, split, eval_metric_values(metrics, keys)) for d, split, keys in more_evals]
    results = [EvalResult(task_type=task or pipeline_tag or "other", dataset_type=d, dataset_name=d,
                          dataset_split=split, metric_type=k.replace("/", "_"), metric_name=k,
                          metric_value=float(v) if isinstance(v, float) else v)
               for d, split, vs in evals for k, v in vs.items()] or None
    data = ModelCardData(license=lic, base_model=base_id, datasets=hub_datasets or None,
                         language=list(language) or None, pipeline_tag=pipeline_tag,
                         tags=sorted(set(["hfrepro", *tags])), library_name=library_name,
                         model_name=title if results else None, eval_results=results, **extra)

    parts = [f"# {title}", ""]
    if description:
        parts += [description.strip(), ""]
    if local_data:
        parts += [f"Trained on local data: {', '.join(f'`{d}`' for d in local_data)}.", ""]
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
        for d, split, vs in (e for e in evals if e[2]):
            intro += (f" {', '.join(f'`{k}`' for k in vs)} also appear in the card's `model-index` metadata "
                      f"(dataset `{d}`" + (f", split `{split}`" if split else "") + ").")
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
        shown = {k: v for k, v in config.items() if k not in SECRET_FIELDS}
        parts += ["The resolved configuration of the run (secrets left out):", "", "```yaml",
                  yaml.safe_dump(shown, sort_keys=True, allow_unicode=True).strip(), "```", ""]
    elif not command:
        parts += ["See the description above.", ""]
    parts += ["Made with hfrepro (the road from word2vec to ChatGPT on the Hugging Face stack).", ""]
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(parts))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|")


def record_adapter_base(model_dir: str | Path) -> str | None:
    """Make an adapter folder's adapter_config.json name its base model by Hub id, as its card does.

    peft records where the base was loaded from: for hfrepro's embedded SmolLM2 that is a path on this machine
    (`~/.cache/hfrepro/models/smollm2-135m-instruct`), useless anywhere else. The embedded copy's card names
    the Hub id it comes from (HuggingFaceTB/SmolLM2-135M-Instruct); that id is written instead. hfrepro still
    loads the adapter offline: `hfrepro.models` maps the id back to the embedded copy. Returns the Hub id, or
    None if the folder is no adapter or its base has no Hub id (left as it is).
    """
    f = Path(model_dir) / "adapter_config.json"
    cfg = read_json_or_empty(f)
    base = cfg.get("base_model_name_or_path")
    if not base or _valid_repo_id(base) and not Path(base).exists():
        return base if base and cfg else None
    hub_id = hub_base_model(base)
    if hub_id:
        atomic_write_json(f, {**cfg, "base_model_name_or_path": hub_id})
    return hub_id


def _adapter_base_path(model_dir: str | Path) -> str | None:
    base = read_json_or_empty(Path(model_dir) / "adapter_config.json").get("base_model_name_or_path")
    return base if base and Path(base).exists() else None


def write_model_card(model_dir: str | Path, *, title: str, license: str | None = None,
                     base_model: str | None = None, datasets: Sequence[str] = (), language: Sequence[str] = (),
                     pipeline_tag: str | None = None, tags: Sequence[str] = (), library_name: str = "transformers",
                     description: str = "", metrics: dict[str, float] | None = None,
                     config: dict[str, Any] | None = None, usage: str | None = None,
                     limits: str | None = None, eval_metrics: Sequence[str] | None = None,
                     eval_dataset: str | None = None, eval_split: str | None = None, task: str | None = None,
                     how_to_load: str | None = None, command: str | None = None,
                     more_evals: Sequence[tuple[str, str | None, Sequence[str]]] = ()) -> Path:
    """Write README.md into `model_dir` with huggingface_hub's `ModelCard` (atomically).

    license: a Hub licence id or a common spelling ("Apache-2.0", "CC-BY-2.5"); unknown -> `other` + name.
    base_model: what the model was trained from: a Hub id, an embedded model name or a local folder (mapped to
        the Hub id its card names). LoRA adapters (adapter_config.json present) take it from the adapter
        config when not given, and their card says how to load base + adapter.
    datasets: Hub dataset ids (or embedded dataset names) the model was trained on.
    metrics: the run's own numbers (metrics.json). All appear in the card's table; the quality metrics
        (`eval_metrics`, default: every finite number that is not bookkeeping such as seconds, steps, tokens)
        go into `model-index` as eval results on `eval_dataset` (default datasets[0]) / `eval_split`;
        `more_evals` adds the results of other held-out sets, each as (dataset, split, metric names).
    task: the model-index task type (default: pipeline_tag, itself guessed from config.json's architecture).
    config: the resolved config of the run ("how it was trained"); secrets (hub_token, ...) are left out.
    usage / limits: intended use and limits (sensible defaults for a small teaching model otherwise).
    how_to_load: a Python snippet replacing the generated one; command: the command that trained it.

    A LoRA adapter's adapter_config.json is made to name its base by Hub id (`record_adapter_base`).
    """

    base_model = base_model or _adapter_base_path(model_dir)  # the local folder it was trained from, named in the text
    record_adapter_base(model_dir)
    card = model_card(title=title, license=license, base_model=base_model, datasets=datasets, language=language,
                      pipeline_tag=pipeline_tag, tags=tags, library_name=library_name, description=description,
                      metrics=metrics, config=config, usage=usage, limits=limits, model_dir=model_dir,
                      eval_metrics=eval_metrics, eval_dataset=eval_dataset, eval_split=eval_split, task=task,
                      how_to_load=how_to_load, command=command, more_evals=more_evals)
    return atomic_write_text(Path(model_dir) / "README.md", str(card).rstrip("\n") + "\n")


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


# --- what a Hub user needs from a model folder's card -----------------------------------------------------

# Pipeline tags the Hub knows that hfrepro's models can carry.
PIPELINE_TAGS = frozenset("""text-generation text2text-generation translation fill-mask feature-extraction
text-classification token-classification question-answering sentence-similarity summarization
reinforcement-learning zero-shot-classification""".split())
HELD_OUT_SPLITS = frozenset({"test", "validation", "valid", "eval", "dev", "heldout", "held-out"})
# Metric names that describe the run, or training rather than held-out data: never in a model-index.
_NOT_HELD_OUT = re.compile(r"(^|[_ /])(train|training|first|final|last)([_ /]|$)|resumed|updates?$|share$|"
                           r"generate|kl_coef|^lr$", re.I)
WEIGHT_FILES = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")
PICKLED = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".kv")


def _run_numbers(folder: Path, root: Path | None) -> list[float]:
    """Every finite number in the metrics.json (and the held-out evaluation's eval.json, where a recipe keeps it
    apart) of `folder` and of its parents up to `root` (the run's record)."""
    out: list[float] = []
    here = folder.resolve()
    stop = (root or folder.parent.parent).resolve()
    while True:
        for name in ("metrics.json", "eval.json"):
            out += [float(v) for v in _flatten(read_json_or_empty(here / name)).values() if _is_number(v)]
        if here == stop or here.parent == here or not here.is_relative_to(stop):
            return out
        here = here.parent


def check_model_folder(folder: str | Path, root: str | Path | None = None) -> list[str]:
    """What a Hugging Face user would find wrong with a model folder and its card (empty list: nothing).

    The card (README.md, parsed by `huggingface_hub.ModelCard.load`) must carry: a Hub `license`; `datasets` that
    a Hub user can look up (Hub ids or hfrepro's data_cards/ names; a reinforcement-learning card names instead,
    as the Hub's do, the gymnasium environment of its model-index); a known `pipeline_tag`; a `library_name`
    the folder really is (transformers: config.json + safetensors of a type transformers or hfrepro registers;
    peft: an adapter whose adapter_config.json names the card's `base_model` Hub id; gensim: vectors as
    safetensors + vocab or word2vec text); `base_model` (a Hub id) wherever the weights came from another model;
    and a `model-index` of held-out numbers (no training loss, no bookkeeping; not the train split; values the
    run measured, found in metrics.json or eval.json of the folder or a parent up to `root`). No pickled weights.
    That the folder also *loads* is `hfrepro.hubcheck.check_loads`.
    """
    from huggingface_hub import ModelCard

    folder = Path(folder)
    if not (folder / "README.md").is_file():
        return ["no README.md (model card)"]
    problems = check_model_card(folder / "README.md")
    try:
        card = ModelCard.load(folder / "README.md")
    except Exception as e:  # noqa: BLE001 - the finding
        return problems or [f"huggingface_hub.ModelCard.load fails: {type(e).__name__}: {e}"]
    meta = card.data.to_dict()
    if not meta.get("license"):
        problems.append("no license")
    datasets = meta.get("datasets") or []
    if meta.get("pipeline_tag") == "reinforcement-learning":  # the Hub's RL cards: the environment is the data
        problems += _check_environments(card.data.eval_results or [])
    elif not datasets:
        problems.append("no datasets (Hub ids or data_cards/ names a user can look up)")
    problems += [f"dataset {d!r} is neither a Hub id nor a data_cards/ name" for d in datasets if dataset_ref(d) != d]
    if meta.get("pipeline_tag") not in PIPELINE_TAGS:
        problems.append(f"pipeline_tag {meta.get('pipeline_tag')!r} is missing or not one the Hub knows")
    problems += _check_library(folder, meta)
    want = expected_base_model(folder, root)
    if want and meta.get("base_model") != want:
        problems.append(f"base_model is {meta.get('base_model')!r}; the run started from {want!r} (config.yaml)")
    problems += _check_eval_results(folder, card.data.eval_results or [], datasets, root)
    pickles = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in PICKLED
                     and p.name != "training_args.bin")  # training_args.bin is never pushed (hfrepro.hub)
    if pickles:
        problems.append(f"pickled files in the model folder: {', '.join(pickles)}")
    return problems


def _check_environments(results: list) -> list[str]:
    """A reinforcement-learning card names no dataset: as on the Hub, its model-index results name the
    environment the agent was evaluated in, which must be one gymnasium knows."""
    import gymnasium as gym

    problems = []
    for env in sorted({r.dataset_type for r in results}):
        try:
            gym.spec(env)
        except Exception:  # noqa: BLE001 - gymnasium raises several kinds of "not found"
            problems.append(f"model-index dataset {env!r} is not a gymnasium environment id (an RL card's data)")
    return problems


def _check_library(folder: Path, meta: dict) -> list[str]:
    lib, base = meta.get("library_name"), meta.get("base_model")
    adapter = read_json_or_empty(folder / "adapter_config.json")
    if lib == "peft":
        if not adapter or not (folder / "adapter_model.safetensors").is_file():
            return ["library_name peft, but no adapter_config.json + adapter_model.safetensors"]
        named = adapter.get("base_model_name_or_path")
        if not base or named != base:
            return [f"adapter_config.json names its base {named!r}, the card {base!r}: both must be the Hub id"]
        return []
    if lib == "transformers":
        cfg = read_json_or_empty(folder / "config.json")
        if not cfg or not any((folder / w).is_file() for w in WEIGHT_FILES):
            return ["library_name transformers, but no config.json + safetensors weights"]
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

        if cfg.get("model_type") not in CONFIG_MAPPING_NAMES and cfg.get("model_type") not in MODEL_MODULES:
            return [f"model_type {cfg.get('model_type')!r} is known neither to transformers nor to hfrepro.automodels"]
        if auto_class(folder)[0] is None:
            return ["no Auto class loads this architecture (config.json architectures / auto_map)"]
        return []
    if lib == "gensim":
        if (folder / "model.safetensors").is_file() and (folder / "vocab.txt").is_file():
            return []
        if any(folder.glob("*.txt")) and not (folder / "vocab.txt").is_file():
            return []  # word2vec text format
        return ["library_name gensim, but no vectors (model.safetensors + vocab.txt, or word2vec text)"]
    if not lib:
        return ["no library_name"]
    return []  # another library (hfrepro's n-gram LM): `check_loads` loads it


def _check_eval_results(folder: Path, results: list, datasets: list, root) -> list[str]:
    if not results:
        return ["no model-index: the card holds none of the run's held-out evaluation numbers"]
    problems, numbers = [], _run_numbers(folder, Path(root) if root else None)
    for r in results:
        name = r.metric_name or r.metric_type
        if _NOT_HELD_OUT.search(str(name)) or _BOOKKEEPING.search(str(name).rsplit("/", 1)[-1]):
            problems.append(f"model-index metric {name!r} is bookkeeping or a training number, not a held-out one")
        split = (r.dataset_split or "").lower()
        if split and split not in HELD_OUT_SPLITS:
            problems.append(f"model-index metric {name!r} is measured on split {r.dataset_split!r}, not held-out data")
        if not split and r.dataset_type in datasets:
            problems.append(f"model-index metric {name!r} names its training dataset {r.dataset_type!r} and no "
                            "held-out split")
        v = r.metric_value
        if not _is_number(v) or not any(math.isclose(float(v), n, rel_tol=1e-9, abs_tol=1e-12) for n in numbers):
            problems.append(f"model-index value {name}={v!r} is not a number the run measured (metrics.json)")
    return problems


def expected_base_model(folder: str | Path, root: str | Path | None = None) -> str | None:
    """The Hub id a model folder's weights came from, read from the run's config.yaml (the folder's or a parent's
    up to `root`): the first of model_name_or_path / model / base_model / sft_model that maps to a Hub id."""
    here, stop = Path(folder).resolve(), Path(root or Path(folder).parent.parent).resolve()
    while True:
        f = here / "config.yaml"
        if f.is_file():
            try:
                cfg = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                cfg = {}
            for key in ("model_name_or_path", "model", "base_model", "sft_model", "policy_model"):
                if isinstance(cfg.get(key), str) and hub_base_model(cfg[key]):
                    return hub_base_model(cfg[key])
            return None
        if here == stop or here.parent == here or not here.is_relative_to(stop):
            return None
        here = here.parent
