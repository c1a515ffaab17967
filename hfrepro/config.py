"""Recipe arguments: dataclasses parsed with HfArgumentParser from `recipes/configs/<name>.yaml`
plus command-line overrides (command line wins), the alignment-handbook / TRL-parser convention.

    (args, train_args) = parse_args((ScriptArguments, TrainingArguments), config="sft")

`--config path.yaml` chooses another YAML. Unknown YAML keys are an error, not silently dropped.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from hfrepro.errors import UserError
from hfrepro.paths import CONFIGS_DIR


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


def _pop_config_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    out, cfg, i = [], None, 0
    while i < len(argv):
        a = argv[i]
        if a == "--config" and i + 1 < len(argv):
            cfg, i = argv[i + 1], i + 2
            continue
        if a.startswith("--config="):
            cfg = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return cfg, out


def parse_args(types: type | Sequence[type], config: str | None = None, argv: Sequence[str] | None = None,
               prog: str | None = None) -> tuple:
    """Parse `types` (dataclasses) from YAML defaults + CLI overrides. Returns a tuple of instances."""
    from transformers import HfArgumentParser

    types = [types] if isinstance(types, type) else list(types)
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg_path, argv = _pop_config_flag(argv)
    if cfg_path is None and config is not None and (CONFIGS_DIR / f"{config}.yaml").is_file():
        cfg_path = str(CONFIGS_DIR / f"{config}.yaml")
    parser = HfArgumentParser(types, prog=prog)
    parser.add_argument("--config", default=None, help="YAML file of argument values (command line wins)")
    if cfg_path:
        values = load_yaml(cfg_path)
        known = {f.name for t in types for f in dataclasses.fields(t)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown argument(s) in config: {', '.join(unknown)}", where=cfg_path,
                            fix="remove them or fix their spelling (see --help for the argument names)")
        parser.set_defaults(**values)
        for action in parser._actions:
            if action.dest in values:
                action.required = False
    if any(any(f.name == "use_cpu" for f in dataclasses.fields(t)) for t in types):
        from hfrepro.training import use_cpu_without_accelerator
        use_cpu_without_accelerator()  # TrainingArguments sets up processes when built: CPU-only must be known
    parsed = parser.parse_args_into_dataclasses(args=argv + (["--config", cfg_path] if cfg_path else []),
                                                return_remaining_strings=False)
    return tuple(p for p in parsed if dataclasses.is_dataclass(p))


def resolved(*objs: Any) -> dict[str, Any]:
    """A plain, JSON/YAML-able dict of the arguments actually used, with secrets redacted."""
    out: dict[str, Any] = {}
    for o in objs:
        if o is None:
            continue
        d = o.to_dict() if hasattr(o, "to_dict") else dataclasses.asdict(o)
        for k, v in d.items():
            if "token" in k.lower() and v not in (None, False) and not isinstance(v, (bool, int)):
                v = "<redacted>"
            out[k] = _plain(v)
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_plain(x) for x in v]
    if hasattr(v, "value"):  # enums
        return _plain(v.value)
    return str(v)
