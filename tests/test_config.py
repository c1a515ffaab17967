"""Recipe argument parsing: YAML defaults + command-line overrides, clear errors, redaction."""

from dataclasses import dataclass, field

import pytest

from hfrepro.config import parse_args, resolved
from hfrepro.errors import UserError


@dataclass
class A:
    name: str = "x"
    steps: int = 10
    lr: float = 1e-3
    flag: bool = False
    hub_token: str = field(default=None)


@dataclass
class B:
    words: list[str] = field(default_factory=lambda: ["a"])


def test_yaml_then_cli(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: 20\nname: from-yaml\nwords: [p, q]\n")
    a, b = parse_args((A, B), argv=["--config", str(cfg), "--steps", "30", "--flag"])
    assert (a.name, a.steps, a.flag, b.words) == ("from-yaml", 30, True, ["p", "q"])
    (a,) = parse_args(A, argv=["--lr", "0.5"])
    assert a.lr == 0.5 and a.steps == 10


def test_unknown_yaml_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stepz: 20\n")
    with pytest.raises(UserError, match="unknown argument.*stepz"):
        parse_args(A, argv=["--config", str(cfg)])


def test_bad_yaml_and_missing_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        parse_args(A, argv=["--config", str(cfg)])
    with pytest.raises(UserError, match="config file not found"):
        parse_args(A, argv=["--config", str(tmp_path / "none.yaml")])


def test_resolved_redacts_tokens():
    d = resolved(A(hub_token="hf_SECRET"))
    assert d["hub_token"] == "<redacted>" and d["steps"] == 10
