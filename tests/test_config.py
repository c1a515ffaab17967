"""Recipe argument parsing: budget YAMLs + command-line overrides, typed values, clear errors, no secrets."""

from dataclasses import dataclass, field

import pytest

from hfrepro.config import BUDGET_NAMES, config_path, parse_args, resolved
from hfrepro.errors import UserError
from hfrepro.paths import CONFIGS_DIR


@dataclass
class A:
    name: str = "x"
    steps: int = 10
    lr: float = 1e-3
    flag: bool = False
    model_name_or_path: str = field(default="m", metadata={"aliases": ["--model"]})
    hub_token: str = field(default=None)


@dataclass
class B:
    words: list[str] = field(default_factory=lambda: ["a"])


def test_yaml_then_cli(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: 20\nname: from-yaml\nwords: [p, q]\nlr: 1\n")
    a, b = parse_args((A, B), argv=["--config", str(cfg), "--steps", "30", "--flag"])
    assert (a.name, a.steps, a.flag, a.lr, b.words) == ("from-yaml", 30, True, 1, ["p", "q"])
    (a,) = parse_args(A, argv=["--lr", "0.5"])
    assert a.lr == 0.5 and a.steps == 10


def test_alias_on_the_command_line_and_in_yaml(tmp_path):
    (a,) = parse_args(A, argv=["--model", "gpt2"])
    assert a.model_name_or_path == "gpt2"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: smol\n")
    assert parse_args(A, argv=["--config", str(cfg)])[0].model_name_or_path == "smol"
    cfg.write_text("model_name_or_path: smol2\n")
    assert parse_args(A, argv=["--config", str(cfg)])[0].model_name_or_path == "smol2"


def test_unknown_yaml_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stepz: 20\n")
    with pytest.raises(UserError, match="unknown argument.*stepz"):
        parse_args(A, argv=["--config", str(cfg)])


@pytest.mark.parametrize("line,key", [("lr: [1, 2]", "lr"), ("steps: 2.5", "steps"), ("flag: 1", "flag"),
                                      ("name: [a]", "name"), ("words: p", "words")])
def test_yaml_value_of_the_wrong_type(tmp_path, line, key):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(line + "\n")
    with pytest.raises(UserError, match=f"config key `{key}` must be") as e:
        parse_args((A, B), argv=["--config", str(cfg)])
    assert e.value.where == str(cfg)


def test_bad_yaml_and_missing_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        parse_args(A, argv=["--config", str(cfg)])
    with pytest.raises(UserError, match="config file not found"):
        parse_args(A, argv=["--config", str(tmp_path / "none.yaml")])


def test_budget_files(tmp_path):
    assert config_path("smoke", "tiny") == CONFIGS_DIR / "smoke" / "tiny.yaml"
    with pytest.raises(UserError, match="no `full` budget for nosuch"):
        config_path("nosuch", "full")
    with pytest.raises(UserError, match="unknown budget"):
        config_path("smoke", "huge")


def test_every_recipe_has_every_budget():
    from hfrepro.paths import RECIPES_DIR
    for recipe in sorted(p.stem for p in RECIPES_DIR.glob("*.py") if not p.name.startswith("_")):
        for b in BUDGET_NAMES:
            assert config_path(recipe, b).is_file()


def test_resolved_keeps_no_secret_and_replays():
    d = resolved(A(hub_token="hf_SECRET"))
    assert "hub_token" not in d and d["steps"] == 10 and "hf_SECRET" not in str(d)


def test_resolved_trainer_config_is_replayable(tmp_path):
    import yaml
    from transformers import TrainingArguments

    first = tmp_path / "first.yaml"
    first.write_text(f"output_dir: {tmp_path}\ninclude_num_input_tokens_seen: non_padding\nlr_scheduler_type: cosine\n")
    _, targs = parse_args((B, TrainingArguments), argv=["--config", str(first), "--max_steps", "7"])
    rec = resolved(targs)
    assert rec["max_steps"] == 7 and rec["include_num_input_tokens_seen"] == "non_padding"
    assert rec["lr_scheduler_type"] == "cosine" and "learning_rate" not in rec  # defaults are not recorded
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(rec))
    _, again = parse_args((B, TrainingArguments), argv=["--config", str(cfg)])
    assert again.max_steps == 7 and resolved(again) == rec


def test_a_run_config_with_unset_options_replays(tmp_path):
    """A run's config.yaml records the options left unset (hub_model_id, resume_from_checkpoint, ...) as null:
    `--config config.yaml` must take them back, while a null for an option that has a value stays an error."""
    import yaml

    from hfrepro.config import OutputArguments

    rec = resolved(B(), OutputArguments(output_dir=str(tmp_path)))
    assert rec["hub_model_id"] is None and rec["resume_from_checkpoint"] is None
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(rec))
    again = parse_args((B, OutputArguments), argv=["--config", str(cfg)])
    assert resolved(*again) == rec
    cfg.write_text(yaml.safe_dump({**rec, "seed": None}))
    with pytest.raises(UserError, match="`seed` must be int"):
        parse_args((B, OutputArguments), argv=["--config", str(cfg)])


def test_precision_follows_the_machine(tmp_path, capsys):
    """A budget written for a GPU (bf16: true) still runs on this CPU, in fp32, with a note; no setting means the
    hardware decides; the command line is obeyed (and refused with one message where it cannot be)."""
    from trl import SFTConfig

    cfg = tmp_path / "full.yaml"
    cfg.write_text(f"output_dir: {tmp_path}\nbf16: true\n")
    (sft,) = parse_args(SFTConfig, argv=["--config", str(cfg)])
    assert sft.bf16 is False and "asks for bf16" in capsys.readouterr().err
    (sft,) = parse_args(SFTConfig, argv=["--output_dir", str(tmp_path)])  # TRL's default would be bf16=True
    assert sft.bf16 is False
    with pytest.raises(UserError, match="invalid arguments"):
        parse_args(SFTConfig, argv=["--output_dir", str(tmp_path), "--bf16", "true"])


def test_config_by_name_picks_the_budget_of_a_variant():
    from dataclasses import make_dataclass

    from hfrepro.config import load_yaml
    want = load_yaml(config_path("word2vec/korean", "tiny"))
    T = make_dataclass("T", [(k, type(v) if v is not None else str, None) for k, v in want.items()])
    (got,) = parse_args(T, argv=["--config", "word2vec/korean", "--budget", "tiny"])
    assert {k: getattr(got, k) for k in want} == want
