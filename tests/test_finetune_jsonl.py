"""prepare-data: a corpus of bad JSONL files, one defect each, each getting exactly one precise message."""

# pytest fixtures come from finetune_helpers (imported below), and tests name them as arguments:
# ruff: noqa: F811

import hashlib
import json
from pathlib import Path

import pytest
from finetune_helpers import tiny_model_dir, tiny_tok  # noqa: F401  (fixtures)

from hfrepro.errors import UserError
from hfrepro.finetune import jsonl

BAD = Path(__file__).resolve().parent / "fixtures" / "finetune" / "bad"

# file -> (line, code, words the message must contain, fix); every file holds exactly this one defect
EXPECTED = {
    "invalid_json.jsonl": (3, "invalid-json", ["invalid JSON", "column"], "dropped"),
    "not_object.jsonl": (2, "not-object", ["JSON array", "expected an object"], "dropped"),
    "missing_field.jsonl": (2, "missing-field", ['no "completion" field'], "dropped"),
    "empty_field.jsonl": (3, "empty-field", ['"completion" is empty'], "dropped"),
    "wrong_type.jsonl": (2, "wrong-type", ['"prompt" is a JSON array', "messages"], "dropped"),
    "duplicate.jsonl": (4, "duplicate", ["duplicate of line 1"], "dropped"),
    "mixed_format.jsonl": (3, "mixed-format", ["chat example", "prompt/completion"], "dropped"),
    "encoding.jsonl": (2, "encoding", ["not valid UTF-8", "0xe9", "column 16"], "dropped"),
    "missing_role_content.jsonl": (2, "missing-field", ['message 2 has no "content"'], "dropped"),
    "empty_messages.jsonl": (2, "empty-field", ['"messages" is an empty list'], "dropped"),
    "messages_not_list.jsonl": (2, "wrong-type", ['"messages" is a JSON string'], "dropped"),
    "bad_role.jsonl": (3, "bad-role", ["message 2", "'narrator'"], "dropped"),
    "role_order.jsonl": (2, "role-order", ["messages 1 and 2 are both user turns"], "dropped"),
    "system_not_first.jsonl": (2, "role-order", ["message 2 is a system message"], "dropped"),
    "no_assistant.jsonl": (3, "role-order", ["no assistant message"], "dropped"),
    "role_case.jsonl": (2, "bad-role", ["message 1 has role 'Human'"], "normalised to 'user'"),
    "trailing_user.jsonl": (2, "role-order", ["ends with a user turn (message 3)"], "trailing user turn removed"),
    "number_completion.jsonl": (2, "wrong-type", ['"completion" is a number (4)'], 'converted to "4"'),
    "unknown_key.jsonl": (2, "unknown-key", ["'label'"], "removed"),
    "whitespace.jsonl": (3, "whitespace", ["ends with whitespace"], "stripped"),
    "separator.jsonl": (2, "separator", ["glued together", "runverb"], "a space put before the completion"),
    "blank_line.jsonl": (2, "blank-line", ["empty line"], "removed"),
    "system_mix.jsonl": (0, "system-mix", ["1 of 3 conversations have a system message"], None),
}


def test_every_fixture_is_covered():
    assert sorted(p.name for p in BAD.glob("*.jsonl")) == sorted([*EXPECTED, "too_long.jsonl"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_precise_message_per_defect(name):
    line, code, words, fix = EXPECTED[name]
    rep = jsonl.check_file(BAD / name)
    assert len(rep.problems) == 1, [p.render() for p in rep.problems]
    p = rep.problems[0]
    assert (p.line, p.code, p.fix) == (line, code, fix), p.render()
    for w in words:
        assert w in p.message, p.render()
    text = jsonl.render(rep, None)
    assert (f"line {line}: " if line else "file: ") + p.message in text


def test_too_long_is_measured_in_tokens(tiny_tok):
    rep = jsonl.check_file(BAD / "too_long.jsonl", tokenizer=tiny_tok, context=128)
    assert [(p.line, p.code, p.fix) for p in rep.problems] == [(2, "too-long", "dropped")]
    assert "longer than the model's context of 128" in rep.problems[0].message
    assert len(rep.rows) == 2 and len(rep.token_counts) == 2
    # above max_length but within the context: a warning, the example is kept
    rep = jsonl.check_file(BAD / "too_long.jsonl", tokenizer=tiny_tok, context=10_000, max_length=64)
    assert [(p.line, p.code) for p in rep.problems] == [(2, "long")] and len(rep.rows) == 3


def test_fixes_are_written_and_input_untouched(tmp_path):
    src = tmp_path / "data.jsonl"
    lines = [(BAD / n).read_bytes() for n in ("role_case.jsonl", "trailing_user.jsonl")]
    src.write_bytes(b"".join(lines))
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    rep = jsonl.check_file(src)
    out = jsonl.write_prepared(rep, jsonl.default_output(src))
    assert out.name == "data_prepared.jsonl"
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    # duplicates are found after fixing: line 5 minus its trailing user turn equals line 2 with 'Human' fixed
    assert [(p.line, p.code) for p in rep.problems] == [(2, "bad-role"), (4, "duplicate"), (5, "role-order"),
                                                        (5, "duplicate"), (6, "duplicate")]
    assert [p.message for p in rep.problems if p.line == 5][1] == "duplicate of line 2"
    roles = [[m["role"] for m in r["messages"]] for r in rows]
    assert roles == [["user", "assistant"]] * 3
    assert rep.changed == 1 and rep.dropped == 3 and len(rows) == 3
    assert jsonl.check_file(out).problems == []  # the prepared file is clean


def test_load_examples_refuses_errors_with_line_numbers():
    with pytest.raises(UserError) as e:
        jsonl.load_examples(BAD / "invalid_json.jsonl")
    assert "line 3: invalid JSON" in e.value.what and "prepare-data" in e.value.fix
    rows = jsonl.load_examples(BAD / "whitespace.jsonl")  # warnings only: loads, fixed
    assert rows[-1]["completion"] == " adjective"


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        jsonl.check_file(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="no examples"):
        jsonl.load_examples(tmp_path / "empty.jsonl")


def test_shipped_example_defects_are_found(tiny_tok):
    """The shipped README example holds six documented defects: prepare-data finds exactly those."""
    from hfrepro.finetune.build_data import DICTIONARY
    rep = jsonl.check_file(DICTIONARY)
    got = sorted((p.code, p.fix) for p in rep.problems)
    assert got == sorted([("bad-role", "normalised to 'user'"), ("whitespace", "stripped"),
                          ("role-order", "trailing user turn removed"), ("empty-field", "dropped"),
                          ("invalid-json", "dropped"), ("duplicate", "dropped")])
    assert len(rep.rows) == 298
