"""Recipe arguments: dataclasses parsed with HfArgumentParser from a budget's YAML plus command-line overrides
(the command line wins), the convention of TRL's scripts and the alignment handbook.

    script_args, training_args, run_args = parse_args((ScriptArguments, TrainingArguments, RunArguments),
                                                      recipe="clm")

Every recipe has one YAML per budget: `recipes/configs/<recipe>/{tiny,default,full}.yaml` (`--budget`, default
`default`), read by the recipe and by `hfrepro reproduce` alike. `--config FILE` reads another file, such as a
run folder's `config.yaml` (which replays that run). Unknown keys and values of the wrong type are errors that
name the file and the key, before anything loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import math
import re
import sys
import types as _types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from hfrepro.errors import UserError
from hfrepro.paths import CONFIGS_DIR
from hfrepro.runtime import PRECISIONS, has_accelerator, precision, use_cpu_without_accelerator

BUDGET_NAMES = ("tiny", "default", "full")
DEFAULT_BUDGET = "default"
# Recorded nowhere, ever: a replayable config must not carry a secret.
SECRET_FIELDS = frozenset({"hub_token", "token", "hf_token", "push_to_hub_token", "api_key", "password",
                           "wandb_api_key"})


@dataclass
class RunArguments:
    """What every recipe accepts besides its own and the trainer's arguments."""
    overwrite: bool = field(default=False, metadata={"help": "start afresh even if output_dir holds a run "
                                                              "(finished, unfinished or with another config)"})
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: cores / processes)"})
    precision: str = field(default="fp32", metadata={
        "help": "fp32, or bf16: mixed precision on the CPU (matrix products in bfloat16, weights and optimizer in "
                "fp32; fast on CPUs with AMX or AVX512-BF16; the numbers change; docs/DEVELOPING.md)",
        "choices": list(PRECISIONS)})
    wait: bool = field(default=False, metadata={"help": "if another process is writing output_dir, wait for it "
                                                         "instead of stopping"})


@dataclass
class OutputArguments:
    """For recipes without a transformers TrainingArguments: the same names for the same things."""
    output_dir: str = field(default=None, metadata={"help": "run folder"})
    seed: int = field(default=0, metadata={"help": "fixes splits, sampling and initialisation"})
    resume_from_checkpoint: str = field(default=None, metadata={"help": "a checkpoint folder, or true for the "
                                                                         "last one in output_dir"})
    push_to_hub: bool = field(default=False, metadata={"help": "push the result to the Hub when done"})
    hub_model_id: str = field(default=None, metadata={"help": "the Hub repository, user/name"})
    hub_private_repo: bool = field(default=None, metadata={"help": "create the Hub repository as private"})
    hub_token: str = field(default=None, metadata={"help": "Hub token (default: HF_TOKEN or `hf auth login`)"})


# --- which YAML ---------------------------------------------------------------------------------------------

def config_path(name: str, budget: str = DEFAULT_BUDGET) -> Path:
    """`recipes/configs/<name>/<budget>.yaml`; `name` may name a variant folder, e.g. `word2vec/korean`."""
    if budget not in BUDGET_NAMES:
        raise UserError(f"unknown budget {budget!r}", fix=f"use one of: {', '.join(BUDGET_NAMES)}")
    path = CONFIGS_DIR / name / f"{budget}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in (CONFIGS_DIR / name).glob("*.yaml"))
        raise UserError(f"no `{budget}` budget for {name}", where=str(path),
                        fix=f"budgets of {name}: {', '.join(have) or 'none'}; or pass --config FILE")
    return path


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}", fix="check the path given to --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"config file is not valid YAML: {e}", where=str(path)) from None
    if not isinstance(data, dict):
        raise UserError("config file must be a mapping of argument names to values", where=str(path))
    return data


def _pop_flag(argv: list[str], flag: str) -> tuple[str | None, list[str]]:
    out, value, i = [], None, 0
    while i < len(argv):
        a = argv[i]
        if a == flag and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
            continue
        if a.startswith(flag + "="):
            value = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return value, out


# --- checking YAML values against the dataclass fields ----------------------------------------------------

def _allowed(tp: Any) -> tuple[type, ...] | None:
    """The Python types a YAML value may have for annotation `tp` (None: anything)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, _types.UnionType):
        out: tuple = ()
        for a in typing.get_args(tp):
            got = _allowed(a)
            if got is None:
                return None
            out += got
        return out
    if origin is typing.Literal:
        return tuple({type(a) for a in typing.get_args(tp)})
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        return (list,)
    if origin is dict or tp is dict:
        return (dict, str)
    if tp is type(None):
        return (type(None),)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return (str,)
    if tp is float:
        return (float, int)
    if tp in (int, str, bool):
        return (tp,)
    return None


def _check_value(key: str, value: Any, tp: Any, where: str) -> None:
    ok = _allowed(tp)
    if ok is None:
        return
    good = isinstance(value, ok) and not (isinstance(value, bool) and bool not in ok)
    if not good:
        want = " or ".join(sorted({"null" if t is type(None) else t.__name__ for t in ok}))
        raise UserError(f"config key `{key}` must be {want}, not {type(value).__name__} {value!r}", where=where,
                        fix=f"give `{key}` a single value of that type (see --help)")


def _yaml_defaults(types: list[type], values: dict[str, Any], where: str) -> dict[str, Any]:
    """YAML keys (or their aliases, e.g. `model` for `model_name_or_path`) mapped to field names, checked."""
    names: dict[str, tuple[str, Any]] = {}
    for t in types:
        hints = typing.get_type_hints(t)
        for f in dataclasses.fields(t):
            if not f.init:
                continue
            tp = hints.get(f.name)
            if f.default is None:  # `str = None`: null (as a run's config.yaml records it) is its default
                tp = typing.Optional[tp]
            names[f.name] = (f.name, tp)
            aliases = f.metadata.get("aliases") or []
            for a in [aliases] if isinstance(aliases, str) else aliases:
                names[a.lstrip("-").replace("-", "_")] = (f.name, tp)
    unknown = sorted(k for k in values if k not in names)
    if unknown:
        raise UserError(f"unknown argument(s) in config: {', '.join(unknown)}", where=where,
                        fix="remove them or fix their spelling (see --help for the argument names)")
    out = {}
    for k, v in values.items():
        name, tp = names[k]
        _check_value(k, v, tp, where)
        out[name] = v
    return out


# --- parsing ------------------------------------------------------------------------------------------------

def parse_args(types: type | Sequence[type], recipe: str | None = None, argv: Sequence[str] | None = None,
               prog: str | None = None, description: str | None = None) -> tuple:
    """Parse `types` (dataclasses) from the budget's YAML + command-line overrides. Returns their instances.

    Each dataclass is built from: its defaults, then the YAML's values (typed as YAML types them, checked
    against the fields), then the options given on the command line (typed by argparse)."""
    from transformers import HfArgumentParser

    types = [types] if isinstance(types, type) else list(types)
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg_path, argv = _pop_flag(argv, "--config")
    budget, argv = _pop_flag(argv, "--budget")
    asking_help = "-h" in argv or "--help" in argv
    if cfg_path is None and recipe is not None and not asking_help:
        cfg_path = str(config_path(recipe, budget or DEFAULT_BUDGET))
    elif cfg_path is not None and not Path(cfg_path).exists() and (CONFIGS_DIR / cfg_path).is_dir():
        cfg_path = str(config_path(cfg_path, budget or DEFAULT_BUDGET))  # a variant by name: word2vec/korean
    parser = HfArgumentParser(types, prog=prog or (f"hfrepro {recipe}" if recipe else None), description=description)
    parser.add_argument("--config", default=None, help="YAML file of argument values, e.g. a run's config.yaml "
                                                        "(command line wins), or a config of recipes/configs/ by "
                                                        "name, e.g. word2vec/korean (with --budget)")
    parser.add_argument("--budget", default=DEFAULT_BUDGET, choices=BUDGET_NAMES,
                        help=f"start from recipes/configs/{recipe or '<recipe>'}/<budget>.yaml (the defaults "
                             "shown here are the code's; the budget's file sets most of them)")
    if asking_help:
        parser.parse_args(argv)  # prints the help and exits
    values = _yaml_defaults(types, load_yaml(cfg_path), cfg_path) if cfg_path else {}
    for action in parser._actions:  # after parsing, only what the command line gave is in the namespace
        action.default = argparse.SUPPRESS
        if action.dest in values:
            action.required = False
    given = vars(parser.parse_args(argv))
    # TrainingArguments sets up accelerate's state when it is built: CPU-only must be known by then.
    use_cpu_without_accelerator()
    out = []
    for t in types:
        names = {f.name for f in dataclasses.fields(t) if f.init}
        kwargs = {k: v for k, v in values.items() if k in names}
        if "bf16" in names:
            _precision_for_this_machine(kwargs, cfg_path)
        kwargs.update({k: v for k, v in given.items() if k in names})
        check_ranges(t, kwargs, given, cfg_path)
        try:
            out.append(t(**kwargs))
        except (ValueError, TypeError) as e:
            raise UserError(f"invalid arguments: {e}", where=cfg_path,
                            fix="check the values against --help") from None
        check_loggers(out[-1])
    return tuple(out)


# --- ranges: checked before anything loads ------------------------------------------------------------------

# (field name pattern, test, what the value must be). A field's metadata may add {"min": x} / {"max": x}.
RANGES = [
    (r"(^|_)batch_size$|^gradient_accumulation_steps$|^num_generations$", lambda v: v >= 1, "at least 1"),
    (r"^max_steps$", lambda v: v >= 1 or v == -1, "at least 1 (or -1: train for num_train_epochs)"),
    (r"(^|_)learning_rate$|^lr$", lambda v: 0 < v < math.inf, "a positive number"),
    (r"^num_train_epochs$|(^|_)epochs$", lambda v: v > 0, "a positive number"),
    (r"^(warmup|save|logging|eval)_steps$|^save_total_limit$", lambda v: v >= 0, "0 or more"),
    (r"dropout$|^lora_dropout$", lambda v: 0 <= v < 1, "in [0, 1)"),
    (r"^(seed|threads)$", lambda v: v >= 0, "0 or more"),
    (r"^(vocab_size|block_size|max_length|n_layer|n_embd|n_head|hidden_size|lora_r|lora_alpha)$",
     lambda v: v >= 1, "at least 1"),
]


def check_ranges(t: type, kwargs: dict[str, Any], given: dict[str, Any], where: str | None) -> None:
    """Refuse an out-of-range number with one message naming the argument and where it came from."""
    for f in dataclasses.fields(t):
        v = kwargs.get(f.name)
        if f.name not in kwargs or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        src = "the command line" if f.name in given else (where or "the defaults")
        rules = [(test, what) for pat, test, what in RANGES if re.search(pat, f.name)]
        if "min" in f.metadata:
            rules.append((lambda x, lo=f.metadata["min"]: x >= lo, f"at least {f.metadata['min']}"))
        if "max" in f.metadata:
            rules.append((lambda x, hi=f.metadata["max"]: x <= hi, f"at most {f.metadata['max']}"))
        for test, what in rules:
            if math.isnan(v) or not test(v):
                raise UserError(f"--{f.name} must be {what}, not {v!r}", where=src,
                                fix=f"give --{f.name} a value that is {what} (see --help)")


# --- experiment trackers (--report_to) ----------------------------------------------------------------------

# transformers' name for a logger -> (the name of its `is_*_available` check, what to pip install)
_LOGGERS = {"tensorboard": ("tensorboard", "tensorboard"), "trackio": ("trackio", "trackio"),
            "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow"), "comet_ml": ("comet", "comet_ml"),
            "neptune": ("neptune", "neptune"), "clearml": ("clearml", "clearml"), "dvclive": ("dvclive", "dvclive"),
            "swanlab": ("swanlab", "swanlab"), "codecarbon": ("codecarbon", "codecarbon"),
            "azure_ml": ("azureml", "azureml-core"), "dagshub": ("dagshub", "dagshub"),
            "flyte": ("flytekit", "flytekit"), "kubeflow": ("kubeflow", "kubeflow-training")}
OFFLINE_LOGGERS = ("tensorboard", "trackio")  # local and offline; installed with hfrepro


def check_loggers(args: Any) -> None:
    """Every logger `--report_to` names (several: comma-separated) is one transformers knows and is installed,
    checked right after parsing, before any tokenizer or model loads: one message and exit 2 otherwise.
    With a logger on, the run is named after its folder and trackio's project is `hfrepro` (`trackio show
    --project hfrepro` opens the dashboard); TensorBoard writes into the run folder (`tensorboard --logdir RUN`)."""
    names = getattr(args, "report_to", None)
    if not names or not isinstance(names, list):
        return
    if any("," in n for n in names):  # --report_to tensorboard,trackio
        names = args.report_to = [x.strip() for n in names for x in n.split(",") if x.strip()]
    from transformers.integrations import integration_utils as iu

    known = list(iu.INTEGRATION_TO_CALLBACK)
    offline = " or ".join(OFFLINE_LOGGERS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown logger(s) in --report_to: {', '.join(unknown)}",
                        fix=f"use {offline} (installed with hfrepro, offline), none, or one of: {', '.join(known)}")
    missing = [n for n in names if not getattr(iu, f"is_{_LOGGERS.get(n, (n, n))[0]}_available", lambda: False)()]
    if missing:
        pkgs = " ".join(_LOGGERS.get(n, (n, n))[1] for n in missing)
        raise UserError(f"--report_to {', '.join(missing)}: not installed", where="--report_to",
                        fix=f"pip install {pkgs}; or use {offline} (installed with hfrepro, offline), or none")
    if getattr(args, "project", None) == "huggingface":  # transformers' default project name
        args.project = "hfrepro"
    if not getattr(args, "run_name", None) and getattr(args, "output_dir", None):
        args.run_name = Path(args.output_dir).name


def _precision_for_this_machine(kwargs: dict, where: str | None) -> None:
    """bf16 where the hardware has it, fp32 elsewhere, unless the command line says otherwise: a budget file
    (e.g. `full`, written for a GPU) that asks for bf16 or fp16 still runs on a CPU, in fp32, with a note."""
    bf16 = precision()["bf16"]
    for key, ok in (("bf16", bf16), ("fp16", has_accelerator())):
        if kwargs.get(key) and not ok:
            print(f"note: {where} asks for {key}, which this machine lacks: training in fp32", file=sys.stderr)
            kwargs[key] = False
    kwargs.setdefault("bf16", bf16)


def resolved(*objs: Any) -> dict[str, Any]:
    """The arguments a run used, as plain YAML: every field of the recipe's own dataclasses, the fields of a
    trainer config that differ from its defaults, never a secret. `--config` on it replays the run."""
    out: dict[str, Any] = {}
    for o in objs:
        if o is None:
            continue
        big = len(dataclasses.fields(o)) > 40  # a TrainingArguments / TRL config: record what was changed
        for f in dataclasses.fields(o):
            if f.name in SECRET_FIELDS or not f.init or f.name.startswith("_"):
                continue
            v = _plain(getattr(o, f.name))
            if v is _SKIP:
                continue
            if big and v == _plain(_default(f)):
                continue
            out[f.name] = v
    return out


_SKIP = object()


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return _SKIP


def _plain(v: Any) -> Any:
    if isinstance(v, enum.Enum):
        return _plain(v.value)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, dict):
        items = {str(k): _plain(x) for k, x in v.items()}
        return _SKIP if any(x is _SKIP for x in items.values()) else items
    if isinstance(v, (list, tuple)):
        items = [_plain(x) for x in v]
        return _SKIP if any(x is _SKIP for x in items) else items
    return _SKIP  # objects built from other fields (an AcceleratorConfig, ...): their fields say it
