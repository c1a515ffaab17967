"""hfrepro.data: seeded splits, strict file reading with line-numbered errors, loading by name/path."""

import pytest

from hfrepro import data
from hfrepro.errors import UserError
from hfrepro.splits import SPLITS, split_dataset


def _ds(n=100, groups=None):
    from datasets import Dataset
    d = {"text": [f"row {i}" for i in range(n)]}
    if groups:
        d["g"] = [f"g{i % groups}" for i in range(n)]
    return Dataset.from_dict(d)


def test_split_is_seeded_and_partitions():
    a = split_dataset(_ds(), seed=1)
    b = split_dataset(_ds(), seed=1)
    c = split_dataset(_ds(), seed=2)
    assert [len(a[s]) for s in SPLITS] == [80, 10, 10]
    assert list(a["test"]["text"]) == list(b["test"]["text"])
    assert list(a["test"]["text"]) != list(c["test"]["text"])
    allrows = sorted([*a["train"]["text"], *a["validation"]["text"], *a["test"]["text"]])
    assert allrows == sorted(_ds()["text"])


def test_grouped_split_keeps_groups_together():
    dd = split_dataset(_ds(200, groups=20), seed=0, group_by="g")
    seen = {s: set(dd[s]["g"]) for s in SPLITS}
    assert not (seen["train"] & seen["test"]) and not (seen["train"] & seen["validation"])
    assert sum(len(dd[s]) for s in SPLITS) == 200


def test_bad_fractions():
    with pytest.raises(UserError, match="fractions"):
        split_dataset(_ds(), seed=0, fractions=(0.5, 0.5, 0.5))


def test_non_utf8_names_line_and_column(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("first line\nsecond caf\xe9 line\n".encode("latin-1"))
    with pytest.raises(UserError) as e:
        data.read_lines(f)
    assert "line 2, column 11" in e.value.what and "0xe9" in e.value.what
    assert e.value.where == f"{f}:2" and "iconv" in e.value.fix


def test_read_table_errors(tmp_path):
    f = tmp_path / "pairs.tsv"
    f.write_text("en\tko\nhello\t안녕\n", encoding="utf-8")
    assert data.read_table(f, required=("en", "ko")) == [{"en": "hello", "ko": "안녕"}]
    with pytest.raises(UserError, match="missing column 'fr'"):
        data.read_table(f, required=("en", "fr"))
    f.write_text("en\tko\nhello\t안녕\nonly-one-column\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 3 has 1 column"):
        data.read_table(f)
    f.write_text("en\tko\nhello\t\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 2: column 'ko' is empty"):
        data.read_table(f, required=("en", "ko"))


def test_read_jsonl_errors(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"a": 1}\n\n{"a": 2,}\n', encoding="utf-8")
    with pytest.raises(UserError, match="invalid JSON on line 3"):
        data.read_jsonl(f)
    f.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(UserError, match="line 2 is a JSON list"):
        data.read_jsonl(f)


def test_load_local_text_file(fixtures):
    dd = data.load(str(fixtures / "tiny.txt"))
    assert set(dd) == set(SPLITS)
    assert sum(len(dd[s]) for s in dd) == 10
    assert data.load(str(fixtures / "tiny.txt"), split="all").num_rows == 10


def test_load_missing_and_unknown(tmp_path):
    with pytest.raises(UserError, match="not found"):
        data.load(str(tmp_path / "nope.txt"))
    with pytest.raises(UserError, match="unknown dataset|cannot load dataset"):
        data.load("no such dataset")
    with pytest.raises(UserError, match="cannot load dataset 'someone/wikitext'"):
        data.load("someone/wikitext")  # offline (conftest): immediate, with the embedded alternatives
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(UserError, match="no data rows"):
        data.load(str(tmp_path / "empty.txt"))


@pytest.mark.integration
def test_every_embedded_dataset_loads_with_splits():
    from hfrepro import assets
    for a in assets.ASSETS.values():
        if a.kind != "dataset":
            continue
        dd = data.load(a.name)
        assert list(dd) == list(SPLITS), a.name
        assert all(len(dd[s]) > 0 for s in dd), a.name
        total = sum(len(dd[s]) for s in dd)
        assert data.load(a.name, split="all").num_rows == total
        reshuffled = data.load(a.name, seed=7)
        assert sum(len(reshuffled[s]) for s in reshuffled) == total


@pytest.mark.integration
def test_parallel_data_is_aligned_and_leak_free():
    dd = data.load("lo-help-en-ko")
    train_src = set(dd["train"]["en"])
    assert not train_src & set(dd["test"]["en"])
    row = dd["test"][0]
    assert row["en"] and row["ko"] and row["module"] in {
        "swriter", "scalc", "simpress", "sdraw", "smath", "sbasic", "schart", "sdatabase", "shared"}


def test_word_order_task_keeps_the_words_and_shuffles_about_half():
    import random

    texts = [" ".join(f"w{k}_{i}" for i in range(n)) for k, n in enumerate([2, 5, 7, 30] * 50)]
    out, labels = data.word_order(texts, random.Random(0), 5, 7)
    assert len(out) == 150                                         # the texts of 2 words are left out
    kept = [t.split()[:7] for t in texts if len(t.split()) >= 5]
    for text, label, orig in zip(out, labels, kept):
        assert sorted(text.split()) == sorted(orig)
        assert (text.split() == orig) is (label == "as written")
    assert 50 < labels.count("shuffled") < 100
    assert data.word_order(texts, random.Random(0), 5, 7) == (out, labels)
    with pytest.raises(UserError, match="min_words"):
        data.check_task("order", ("label", "order"), 8, 7)
    with pytest.raises(UserError, match="use one of: label, order"):
        data.check_task("genre", ("label", "order"), 12, 24)
    data.check_task("label", ("label", "order"), 8, 7)  # the bounds are the order task's only
