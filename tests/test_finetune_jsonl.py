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


# --- plain text and CSV -> JSONL (prepare-data's step 1) ------------------------------------------------

GUIDE = """Neural Studio guide

What is Neural Studio?
Neural Studio builds neural networks without code.

Start a project
Open the File menu and choose New Project, then press Create.

Q: How do I export a model?
A: Choose Export from the Model menu,
then pick ONNX.

User: Can I undo a change?
Assistant: Yes. Press Ctrl+Z.
User: And redo?
Assistant: Ctrl+Y.

Neural Studio saves your work every five minutes and keeps the autosaved
copies in the backup folder of your project for seven days at most.
"""


def test_text_blocks_convert_by_the_stated_rules(tmp_path):
    src = tmp_path / "guide.txt"
    src.write_text(GUIDE)
    conv = jsonl.convert(src)
    assert conv.rows == [
        {"text": "Neural Studio guide"},
        {"prompt": "What is Neural Studio?", "completion": " Neural Studio builds neural networks without code."},
        {"prompt": "Start a project", "completion": " Open the File menu and choose New Project, then press Create."},
        {"prompt": "How do I export a model?", "completion": " Choose Export from the Model menu,\nthen pick ONNX."},
        {"messages": [{"role": "user", "content": "Can I undo a change?"},
                      {"role": "assistant", "content": "Yes. Press Ctrl+Z."},
                      {"role": "user", "content": "And redo?"}, {"role": "assistant", "content": "Ctrl+Y."}]},
        # a hard-wrapped paragraph: its first line is not a heading
        {"text": "Neural Studio saves your work every five minutes and keeps the autosaved copies in the backup "
                 "folder of your project for seven days at most."},
    ]
    assert conv.places[1] == "guide.txt lines 3-4" and conv.places[0] == "guide.txt line 1"
    assert conv.rules == {"paragraph -> text": 2, "heading -> paragraph": 2, "labelled prompt/completion": 1,
                          "labelled chat turns": 1}


def test_converted_problems_are_reported_at_the_source_lines(tmp_path):
    src = tmp_path / "faq.txt"
    src.write_text("Q: What is a layer?\nA: A function of its input.\n\nQ: What is an epoch?\nA:\n\n"
                   "Q: What is a layer?\nA: A function of its input.\n")
    conv = jsonl.convert(src)
    out = jsonl.write_converted(conv, tmp_path / "faq.jsonl")
    rep = jsonl.check_file(out)
    jsonl.locate(rep, conv)
    rendered = [p.render() for p in rep.problems]
    assert 'faq.txt lines 4-5: "completion" is empty -> dropped' in rendered
    assert "faq.txt lines 7-8: duplicate of faq.txt lines 1-2 -> dropped" in rendered
    assert len(rep.rows) == 1


def test_csv_and_tsv_columns(tmp_path):
    src = tmp_path / "qa.csv"
    src.write_text('Question,Answer,notes\n"What is a layer?","A function, of its input.",x\n\n"Why?",,\n')
    conv = jsonl.convert(src)
    assert conv.rows == [{"prompt": "What is a layer?", "completion": " A function, of its input."},
                         {"prompt": "Why?", "completion": ""}]
    assert conv.places == ["qa.csv row 2", "qa.csv row 4"] and conv.notes == ["column(s) left out: notes"]
    tsv = tmp_path / "lines.tsv"
    tsv.write_text("id\ttext\n1\tThe first line.\n")
    assert jsonl.convert(tsv).rows == [{"text": "The first line."}]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="no usable columns in the header of bad.csv: a, b"):
        jsonl.convert(bad)


def test_conversion_never_overwrites_another_file(tmp_path):
    src = tmp_path / "d.txt"
    src.write_text("Q: a?\nA: b.\n")
    conv = jsonl.convert(src)
    (tmp_path / "d.jsonl").write_text('{"prompt": "mine", "completion": " keep"}\n')
    with pytest.raises(UserError, match="exists and is not this conversion"):
        jsonl.write_converted(conv, tmp_path / "d.jsonl")
    assert "mine" in (tmp_path / "d.jsonl").read_text()
    (tmp_path / "d.jsonl").unlink()
    jsonl.write_converted(conv, tmp_path / "d.jsonl")
    jsonl.write_converted(conv, tmp_path / "d.jsonl")        # the same conversion again: fine


def test_not_utf8_text_is_one_clear_error(tmp_path):
    src = tmp_path / "k.txt"
    src.write_bytes("첫 줄\n".encode("cp949"))
    with pytest.raises(UserError, match="not UTF-8 text .* on line 1"):
        jsonl.convert(src)


def test_text_rows_are_a_format(tmp_path, tiny_tok):
    f = tmp_path / "t.jsonl"
    f.write_text('{"text": "The cat sat."}\n{"text": ""}\n{"text": "The dog ran.", "source": "x"}\n'
                 '{"prompt": "a", "completion": " b"}\n')
    rep = jsonl.check_file(f, tokenizer=tiny_tok)
    assert rep.format == "text" and rep.rows == [{"text": "The cat sat."}, {"text": "The dog ran."}]
    assert [(p.line, p.code) for p in rep.problems] == [(2, "empty-field"), (3, "unknown-key"), (4, "mixed-format")]
    assert all(n > 1 for n in rep.token_counts)
    assert "plain text" in jsonl.render(rep, None)
