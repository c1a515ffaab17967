"""Stage 1 (word2vec) unit tests: pair generator, tokeniser, coverage counting against gensim, OOV and
empty-corpus errors, non-UTF-8 input, the recipe's run folder (resume after interruption, no-op re-run,
--overwrite, determinism), the stage's claims. Tiny synthetic corpora."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hfrepro import runtime
from hfrepro.embeddings import evaluate as E
from hfrepro.embeddings import pairs as P
from hfrepro.embeddings import text as T
from hfrepro.embeddings import vectors as V
from hfrepro.errors import UserError
from tests.test_reproduce import uncaptioned

REPO = Path(__file__).resolve().parents[1]
FAT_CAT = "The fat cat sat on the mat"


# --- the pair generator -------------------------------------------------------------------------------------

def test_skipgram_pairs_match_the_classic_table():
    got = P.skipgram_pairs(P.sentence_words(FAT_CAT), window=2)
    assert got == [
        ("The", "fat"), ("The", "cat"),
        ("fat", "The"), ("fat", "cat"), ("fat", "sat"),
        ("cat", "The"), ("cat", "fat"), ("cat", "sat"), ("cat", "on"),
        ("sat", "fat"), ("sat", "cat"), ("sat", "on"), ("sat", "the"),
        ("on", "cat"), ("on", "sat"), ("on", "the"), ("on", "mat"),
        ("the", "sat"), ("the", "on"), ("the", "mat"),
        ("mat", "on"), ("mat", "the"),
    ]


def test_cbow_examples_match_the_classic_table():
    got = P.cbow_examples(P.sentence_words(FAT_CAT), window=2)
    assert got == [
        (["fat", "cat"], "The"),
        (["The", "cat", "sat"], "fat"),
        (["The", "fat", "sat", "on"], "cat"),
        (["fat", "cat", "on", "the"], "sat"),
        (["cat", "sat", "the", "mat"], "on"),
        (["sat", "on", "mat"], "the"),
        (["on", "the"], "mat"),
    ]


def test_pairs_window_one_and_counts():
    words = P.sentence_words(FAT_CAT)
    assert len(P.skipgram_pairs(words, 1)) == 2 * (len(words) - 1)
    assert P.cbow_examples(["a", "b"], 5) == [(["b"], "a"), (["a"], "b")]
    assert P.skipgram_pairs(["solo"], 2) == []


def test_pairs_table_and_errors():
    t = P.pairs_table(FAT_CAT, 2, "skipgram")
    assert "22 (centre, context) pairs" in t and "| 9 | cat | on |" in t
    c = P.pairs_table(FAT_CAT, 2, "cbow")
    assert "| 3 | The, fat, sat, on | cat |" in c
    with pytest.raises(UserError, match="window"):
        P.skipgram_pairs(["a"], 0)
    with pytest.raises(UserError, match="no words"):
        P.pairs_table("... !! ?", 2, "cbow")
    with pytest.raises(UserError, match="unknown mode"):
        P.pairs_table(FAT_CAT, 2, "glove")


def test_one_hot_picture():
    pic = P.one_hot_picture(FAT_CAT, "cat", vocab_size=10_000)
    assert "[0, 0, 1, 0, 0, 0]" in pic and "9,999 zeros" in pic and "pass --vectors" in pic
    kv = _kv({"cat": [1, 0], "dog": [0.9, 0.1], "mat": [0, 1], "the": [0.5, 0.5]})
    pic = P.one_hot_picture(FAT_CAT, "cat", kv=kv, vectors_label="toy")
    assert "cosine(cat, mat) = +0.000" in pic and "2 real numbers" in pic


# --- tokenisation and corpora ---------------------------------------------------------------------------------

def test_tokenize_english_and_korean():
    assert T.tokenize("The King's 2 horses, O'er!") == ["the", "king", "s", "horses", "o", "er"]
    assert T.tokenize("대한민국의 수도는 서울이다. 국가 Calc에서 Calc와이", "ko") == [
        "대한민국", "수도", "서울", "국가", "calc", "calc와이"]
    assert T.strip_particle("대통령이") == "대통령" and T.strip_particle("국가") == "국가"
    assert T.detect_language(["대한민국은 민주공화국이다."]) == "ko" and T.detect_language(["hello"]) == "en"


def test_corpus_from_file_shuffled_and_capped(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("\n".join(f"line {i} alpha beta" for i in range(50)) + "\n", encoding="utf-8")
    c = T.load_corpus(str(f), seed=1)
    assert c.tokens == 150 and len(c.sentences) == 50 and c.language == "en"
    assert c.sources[0]["tokens"] == 150
    assert T.load_corpus(str(f), seed=1).sentences == c.sentences  # seeded
    capped = T.load_corpus(str(f), seed=1, max_tokens=30)
    assert capped.tokens == 30 and capped.sources[0]["rows"] == 10


def test_empty_corpus_is_a_clear_error(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("123 456\n!!! ...\n", encoding="utf-8")
    with pytest.raises(UserError, match="no words") as e:
        T.load_corpus(str(f))
    assert str(f) in e.value.render()
    g = tmp_path / "blank.txt"
    g.write_text("\n\n", encoding="utf-8")
    with pytest.raises(UserError, match="no data rows"):
        T.load_corpus(str(g))
    with pytest.raises(UserError, match="neither a file nor an embedded dataset"):
        T.load_corpus("no-such-corpus")


def test_non_utf8_corpus_names_the_line(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("first line\nsecond line\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(UserError, match="line 3") as e:
        T.load_corpus(str(f))
    assert "not valid UTF-8" in e.value.what and "iconv" in e.value.fix


def test_long_rows_are_cut_not_truncated(tmp_path):
    f = tmp_path / "long.txt"
    f.write_text(" ".join(["word"] * 25_000) + "\n", encoding="utf-8")
    c = T.load_corpus(str(f))
    assert sorted(len(s) for s in c.sentences) == [5_000, 10_000, 10_000]  # shuffled


# --- evaluation: coverage counting and agreement with gensim ---------------------------------------------

def _kv(d: dict):
    from gensim.models import KeyedVectors
    kv = KeyedVectors(vector_size=len(next(iter(d.values()))))
    kv.add_vectors(list(d), np.array(list(d.values()), dtype=np.float32))
    return kv


def _toy_kv():
    # king - man + woman = queen exactly; paris - france + italy = rome exactly
    return _kv({"man": [1, 0, 0, 0], "woman": [1, 1, 0, 0], "king": [1, 0, 1, 0], "queen": [1, 1, 1, 0],
                "france": [0, 0, 0, 1], "paris": [0, 0.2, 0.1, 1], "italy": [0.1, 0, 0, 1],
                "rome": [0.1, 0.2, 0.1, 1], "big": [0.3, 0.3, 0.3, 0.3]})


def test_analogy_coverage_counting():
    qs = [E.Question("family", "semantic", "man", "king", "woman", "queen"),
          E.Question("family", "semantic", "Man", "King", "Woman", "Queen"),       # case-insensitive: covered
          E.Question("family", "semantic", "boy", "prince", "girl", "princess"),   # OOV: not covered
          E.Question("capital", "semantic", "France", "Paris", "Italy", "Rome"),
          E.Question("gram3", "syntactic", "big", "bigger", "small", "smaller")]   # OOV
    r = E.analogy_eval(_toy_kv(), qs)
    fam = next(s for s in r["sections"] if s["section"] == "family")
    assert (fam["questions"], fam["covered"], fam["correct"]) == (3, 2, 2)
    assert r["semantic"]["covered"] == 3 and r["semantic"]["questions"] == 4
    assert r["syntactic"]["covered"] == 0 and r["syntactic"]["accuracy"] is None
    assert r["total"]["covered"] == 3 and r["total"]["coverage"] == pytest.approx(3 / 5)
    assert r["total"]["accuracy"] == pytest.approx(r["total"]["correct"] / 3)
    assert r["total"]["accuracy_all"] == pytest.approx(r["total"]["correct"] / 5)
    # restrict_vocab: only the first N words count, so "queen" (4th) drops out with N=3
    assert E.analogy_eval(_toy_kv(), qs[:1], restrict_vocab=3)["total"]["covered"] == 0


def test_analogy_eval_agrees_with_gensim(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    kv = _kv({w: rng.normal(size=16) for w in words})
    r = random.Random(0)
    lines = []
    for sec in ("capital-x", "gram1-y"):
        lines.append(f": {sec}")
        for _ in range(120):
            a, b, c, d = r.sample(words, 4)
            if r.random() < 0.2:
                d = "missing"
            lines.append(f"{a} {b} {c} {d}")
        # some answerable ones: d = nearest to b - a + c by construction
        for _ in range(30):
            a, b, c = r.sample(words, 3)
            d = kv.most_similar(positive=[b, c], negative=[a], topn=1)[0][0]
            lines.append(f"{a} {b} {c} {d}")
    f = tmp_path / "q.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mine = E.analogy_eval(kv, E.load_questions(str(f)), restrict_vocab=250)
    _, theirs = kv.evaluate_word_analogies(str(f), restrict_vocab=250)
    for m, g in zip(mine["sections"], theirs):
        assert m["section"] == g["section"]
        assert m["correct"] == len(g["correct"]) and m["covered"] == len(g["correct"]) + len(g["incorrect"])
    assert mine["total"]["correct"] == len(theirs[-1]["correct"]) > 0


def test_word_pairs_coverage_and_spearman():
    from scipy.stats import spearmanr
    kv = _toy_kv()
    pairs = [("king", "queen", 9.0), ("man", "woman", 8.0), ("paris", "rome", 5.0), ("king", "big", 2.0),
             ("unicorn", "horse", 7.0)]
    r = E.pairs_eval(kv, pairs)
    assert (r["pairs"], r["covered"]) == (5, 4) and r["coverage"] == pytest.approx(0.8)
    ours = [kv.similarity(a, b) for a, b, _ in pairs[:4]]
    assert r["spearman"] == pytest.approx(spearmanr([s for *_, s in pairs[:4]], ours)[0])
    assert E.pairs_eval(kv, [("x", "y", 1.0)])["spearman"] is None


def test_benchmark_files_errors(tmp_path):
    bad = tmp_path / "q.txt"
    bad.write_text(": sec\na b c\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 2 has 3 words"):
        E.load_questions(str(bad))
    p = tmp_path / "p.tsv"
    p.write_text("a\tb\tnot-a-number\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 1"):
        E.load_pairs(str(p))


# --- OOV ----------------------------------------------------------------------------------------------------

def test_oov_names_every_missing_word_with_suggestions():
    kv = _toy_kv()
    with pytest.raises(UserError) as e:
        V.analogy(kv, "king", "mann", "서울")
    msg = e.value.what
    assert "'mann' (close: man" in msg and "'서울'" in msg and "king" not in msg.split(":", 1)[1].split("(")[0]
    assert V.analogy(kv, "King", "man", "woman")[0][0] == "queen"  # case folds to the lower-case vocabulary
    assert V.rank_of(kv, "king", "man", "woman", "queen")[0] == 1
    assert V.rank_of(kv, "king", "man", "woman", "zebra") == (None, None)
    with pytest.raises(UserError, match="not in the vocabulary"):
        V.similar(kv, "zebra")


def test_vectors_folder_roundtrip_and_bad_paths(tmp_path):
    kv = _toy_kv()
    for w in kv.index_to_key:
        kv.set_vecattr(w, "count", 7)
    V.save_folder(kv, tmp_path / "m", {"mode": "skipgram"}, gensim_path=tmp_path / "gensim" / "m.kv")
    for f in ("model.safetensors", "vocab.txt", "config.json", "vectors.txt"):
        assert (tmp_path / "m" / f).is_file()
    assert not list((tmp_path / "m").glob("*.kv")) and not list(tmp_path.glob("gensim/.*"))
    assert np.allclose(V.load(tmp_path / "gensim" / "m.kv")["king"], kv["king"])
    back = V.load(tmp_path / "m")
    assert back.index_to_key == kv.index_to_key and np.allclose(back.vectors, kv.vectors)
    assert back.get_vecattr("king", "count") == 7
    txt = V.load(tmp_path / "m" / "vectors.txt")
    assert np.allclose(txt["queen"], kv["queen"], atol=1e-5)
    with pytest.raises(UserError, match="no word vectors"):
        V.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a word-vector folder"):
        V.load(tmp_path / "empty")


# --- training: resume, determinism, the whole run ---------------------------------------------------------

def _synthetic(n=1500, seed=0):
    r = random.Random(seed)
    subj = ["king", "queen", "man", "woman", "prince", "princess", "boy", "girl"]
    verb = ["rules", "walks", "sees", "loves", "finds"]
    obj = ["land", "castle", "city", "river", "forest", "crown"]
    return [[r.choice(subj), r.choice(verb), "the", r.choice(obj)] + r.sample(obj, 2) for _ in range(n)]


def _corpus_file(tmp_path, n=1500) -> Path:
    f = tmp_path / "corpus.txt"
    f.write_text("\n".join(" ".join(s) for s in _synthetic(n)) + "\n", encoding="utf-8")
    return f


def _argv(corpus, out, *more):
    """The recipe on a synthetic corpus, small and quiet (the default budget's YAML under these overrides)."""
    return ["--corpus", str(corpus), "--vector_size", "16", "--window", "2", "--min_count", "1", "--epochs", "2",
            "--seed", "3", "--analogies", "", "--pair_sets", "", "--classify", "", "--plot_pairs", "",
            "--disable_tqdm", "--output_dir", str(out), *more]


class _StopAfter:
    """Stands in for the run folder in train_epochs: a KeyboardInterrupt after epoch `stop`, as a kill would."""

    def __init__(self, path, stop=None):
        self.path, self.stop, self.rows = Path(path), stop, []

    def log(self, row):
        self.rows.append(row)
        if row["epoch"] == self.stop:
            raise KeyboardInterrupt


def test_interrupted_training_resumes_to_the_same_vectors(tmp_path):
    from hfrepro.embeddings.epochs import load_checkpoint
    from hfrepro.embeddings.text import Corpus
    from hfrepro.recipes.word2vec import ScriptArguments, new_model, train_epochs

    corpus = Corpus(_synthetic(), "en")
    counts = corpus.counts()
    args = ScriptArguments(vector_size=16, window=2, min_count=1, epochs=3)
    ref, ref_state = new_model(args, 3, "skipgram", corpus, counts)
    train_epochs(ref, ref_state, corpus.sentences, args, _StopAfter(tmp_path / "ref"))

    model, state = new_model(args, 3, "skipgram", corpus, counts)
    with pytest.raises(KeyboardInterrupt):
        train_epochs(model, state, corpus.sentences, args, _StopAfter(tmp_path / "run", stop=1))
    assert [p.name for p in (tmp_path / "run" / "skipgram").iterdir()] == ["checkpoint-1"]
    model, state = load_checkpoint(tmp_path / "run" / "skipgram")
    train_epochs(model, state, corpus.sentences, args, _StopAfter(tmp_path / "run"))
    assert state["resumed_from_epoch"] == 1 and state["epoch"] == 3
    assert state["raw_words"] == ref_state["raw_words"]
    assert np.array_equal(model.wv.vectors, ref.wv.vectors)
    assert [p.name for p in (tmp_path / "run" / "skipgram").iterdir()] == ["checkpoint-3"]  # only the newest kept


def test_cbow_starts_at_word2vec_c_s_learning_rate_and_skipgram_does_not(tmp_path):
    from hfrepro.embeddings.text import Corpus
    from hfrepro.recipes.word2vec import ScriptArguments, new_model, train_epochs

    assert ScriptArguments().start_alpha("cbow") == 0.05 and ScriptArguments().start_alpha("skipgram") == 0.025
    assert ScriptArguments(cbow_alpha=0).start_alpha("cbow") == 0.025                  # 0: --alpha for both
    with pytest.raises(UserError, match="min_alpha <= cbow_alpha"):
        ScriptArguments(cbow_alpha=1e-5).check()
    corpus = Corpus(_synthetic(), "en")
    counts = corpus.counts()

    def vectors(mode, cbow_alpha, name):
        args = ScriptArguments(vector_size=16, window=2, min_count=1, epochs=1, cbow_alpha=cbow_alpha)
        model, state = new_model(args, 3, mode, corpus, counts)
        train_epochs(model, state, corpus.sentences, args, _StopAfter(tmp_path / name))
        return model.wv.vectors

    assert not np.array_equal(vectors("cbow", 0.05, "c1"), vectors("cbow", 0, "c2"))      # CBOW's own rate is used
    assert np.array_equal(vectors("skipgram", 0.05, "s1"), vectors("skipgram", 0, "s2"))  # skip-gram's is --alpha


def test_run_writes_a_complete_folder_and_is_deterministic(tmp_path):
    from hfrepro.cards import check_model_card
    from hfrepro.hub import plan_upload
    from hfrepro.recipes.word2vec import cli

    corpus = _corpus_file(tmp_path)
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    m1 = cli(_argv(corpus, r1, "--plot_pairs", "king:queen,man:woman", "--save_text_format", "true"))
    m2 = cli(_argv(corpus, r2, "--plot_pairs", "king:queen,man:woman", "--save_text_format", "true"))
    for f in ("config.yaml", "metrics.json", "log.jsonl", "status.json", "results.md", "analogy_pca.png"):
        assert (r1 / f).is_file(), f
    assert "analogy_pca.png" in (r1 / "results.md").read_text() and uncaptioned((r1 / "results.md").read_text()) == []
    for mode in ("cbow", "skipgram"):
        folder = r1 / mode
        for f in ("model.safetensors", "vocab.txt", "config.json", "vectors.txt", "README.md", "config.yaml",
                  "metrics.json", "checkpoint-2/trainer_state.json"):
            assert (folder / f).is_file(), f"{mode}/{f}"
        assert (r1 / "gensim" / f"{mode}.kv").is_file()
        card = (folder / "README.md").read_text()
        assert "library_name: gensim" in card and "snapshot_download" in card and check_model_card(card) == []
        assert (folder / "model.safetensors").read_bytes() == (r2 / mode / "model.safetensors").read_bytes()
        assert m1[mode]["vocab_size"] == m2[mode]["vocab_size"] == 20
        assert m1[mode]["raw_words"] == 2 * 1500 * 6
        # what a push of this mode uploads: the repo files + the run's record, no pickle, no checkpoint
        paths = plan_upload(folder).paths
        assert {"model.safetensors", "config.yaml", "metrics.json", "README.md"} <= set(paths)
        assert not [p for p in paths if p.endswith((".kv", ".model")) or "checkpoint" in p]
    assert m1["deterministic"] is True and m1["corpus"]["tokens"] == 9000
    assert [r["epoch"] for r in runtime.read_log(r1 / "log.jsonl") if r["mode"] == "cbow"] == [1, 2]
    with pytest.raises(UserError):  # the run folder itself is no model repository (and holds gensim/*.kv)
        plan_upload(r1)


def test_finished_run_is_a_noop_and_overwrite_retrains(tmp_path):
    from hfrepro.recipes.word2vec import cli

    corpus, out = _corpus_file(tmp_path, 300), tmp_path / "run"
    m1 = cli(_argv(corpus, out))
    vecs = (out / "skipgram" / "model.safetensors").read_bytes()
    stamp = (out / "skipgram" / "model.safetensors").stat().st_mtime_ns
    m2 = cli(_argv(corpus, out, "--threads", "1"))  # how a run is watched does not change what it computes
    assert m2 == m1 and (out / "skipgram" / "model.safetensors").stat().st_mtime_ns == stamp
    assert len(runtime.read_log(out / "log.jsonl")) == 4
    with pytest.raises(UserError, match="different config"):
        cli(_argv(corpus, out, "--epochs", "1"))
    m3 = cli(_argv(corpus, out, "--epochs", "1", "--overwrite"))
    assert m3["skipgram"]["epoch"] == 1 and len(runtime.read_log(out / "log.jsonl")) == 2
    assert (out / "skipgram" / "model.safetensors").read_bytes() != vecs


def test_an_interrupted_run_keeps_its_finished_mode_and_resumes_the_other(tmp_path):
    """Killed while saving skip-gram (CBOW saved, skip-gram's last checkpoint written): the same command keeps
    CBOW as it is, continues skip-gram from its checkpoint, and ends with the vectors of an uninterrupted run."""
    from hfrepro.recipes.word2vec import cli

    corpus, out = _corpus_file(tmp_path, 300), tmp_path / "run"
    argv = _argv(corpus, out, "--epochs", "3", "--no_parallel_modes")
    ref = cli(_argv(corpus, tmp_path / "ref", "--epochs", "3", "--no_parallel_modes"))
    code = ("import os, sys\nfrom hfrepro.recipes import word2vec as W\nreal = W.save_mode\n"
            "def save_mode(kv, folder, *a, **kw):\n"
            "    if folder.name == 'skipgram':\n        os._exit(9)\n"
            "    return real(kv, folder, *a, **kw)\n"
            "W.save_mode = save_mode\nW.cli(sys.argv[1:])\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 9, r.stderr
    first = json.loads((out / "metrics.json").read_text())
    assert "cbow" in first and "skipgram" not in first and (out / "skipgram" / "checkpoint-3").is_dir()
    m = cli(argv)
    assert m["cbow"] == first["cbow"] and m["skipgram"]["resumed_from_epoch"] == 3
    for mode in ("cbow", "skipgram"):
        assert (out / mode / "model.safetensors").read_bytes() == (tmp_path / "ref" / mode /
                                                                   "model.safetensors").read_bytes()
        assert m[mode]["vocab_size"] == ref[mode]["vocab_size"]


def test_run_errors(tmp_path):
    from hfrepro.recipes.word2vec import cli

    f = tmp_path / "few.txt"
    f.write_text("one two three\n", encoding="utf-8")
    with pytest.raises(UserError, match="no word occurs at least min_count=5"):
        cli(_argv(f, tmp_path / "a", "--min_count", "5"))
    with pytest.raises(UserError, match="unknown mode"):
        cli(_argv(f, tmp_path / "b", "--modes", "glove"))
    with pytest.raises(UserError, match="at least 1"):
        cli(_argv(f, tmp_path / "c", "--window", "0"))
    with pytest.raises(UserError, match="its own last epoch"):
        cli(_argv(f, tmp_path / "d", "--resume_from_checkpoint", str(tmp_path / "d" / "checkpoint-1")))
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()  # refused before the folder


def test_vectors_do_not_depend_on_pythonhashseed(tmp_path):
    """workers=1 + seed: the same vectors in two processes with different hash seeds (gensim 4 seeds from
    numpy, not from hash())."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(" ".join(s) for s in _synthetic(400)) + "\n", encoding="utf-8")
    code = ("import hashlib; from hfrepro.embeddings.text import Corpus\n"
            "from hfrepro.recipes.word2vec import ScriptArguments, new_model\n"
            f"c = Corpus([l.split() for l in open({str(corpus)!r}, encoding='utf-8')], 'en')\n"
            "a = ScriptArguments(vector_size=8, min_count=1, epochs=1, workers=1)\n"
            "m, _ = new_model(a, 0, 'skipgram', c, c.counts())\n"
            "m.train(c.sentences, total_examples=len(c.sentences), epochs=1)\n"
            "print(hashlib.sha256(m.wv.vectors.tobytes()).hexdigest())\n")
    outs = []
    for hs in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hs, "PYTHONPATH": str(REPO)}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.strip())
    assert outs[0] == outs[1] and len(outs[0]) == 64


# --- classification and plots ----------------------------------------------------------------------------

def test_classify_own_labelled_file(tmp_path):
    from hfrepro.embeddings import classify as C
    r = random.Random(0)
    rows = ["text\tlabel"]
    for _ in range(200):
        lab = r.choice(["royal", "nature"])
        words = (["king", "queen", "crown", "castle"] if lab == "royal" else ["river", "forest", "land", "city"])
        rows.append(" ".join(r.choices(words, k=5)) + f"\t{lab}")
    f = tmp_path / "labels.tsv"
    f.write_text("\n".join(rows) + "\n", encoding="utf-8")
    kv = _kv({w: np.eye(8)[i] for i, w in enumerate(["king", "queen", "crown", "castle", "river", "forest",
                                                       "land", "city"])})
    res = C.run({"toy": kv}, str(f), "text", "label", language="en", seed=0)
    accs = {x["classifier"].split(" ")[0]: x["accuracy"] for x in res["results"]}
    assert res["train"] + res["test"] <= 200 and res["labels"] == ["nature", "royal"]
    assert accs["averaged"] == 1.0 and accs["bag"] == 1.0 and accs["majority"] < 0.8
    with pytest.raises(UserError, match="no column 'category'"):
        C.run({"toy": kv}, str(f), "text", "category")


def test_plot_writes_png_and_rejects_unknown_words(tmp_path):
    from hfrepro.embeddings.plot import parse_pairs, plot
    info = plot({"toy": _toy_kv()}, tmp_path / "p.png", parse_pairs("man:woman,king:queen,boy:girl"))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert info["toy"]["missing"] == ["boy", "girl"]
    with pytest.raises(UserError, match="nothing to plot"):
        plot({"toy": _toy_kv()}, tmp_path / "q.png", parse_pairs("cat:dog"))
    with pytest.raises(UserError, match="from:to"):
        parse_pairs("man-woman")


def test_answers_string_and_pairing():
    qs = [E.Question("family", "semantic", "man", "king", "woman", "queen"),
          E.Question("family", "semantic", "boy", "prince", "girl", "princess"),   # OOV: not covered
          E.Question("capital", "semantic", "france", "paris", "italy", "rome"),
          E.Question("gram3", "syntactic", "big", "bigger", "small", "smaller")]
    r = E.analogy_eval(_toy_kv(), qs)
    assert r["answers"] == "1-1-"
    a, b = E.paired_answers("1-0-10", "0-11-0", "semantic", qs + qs[:2])
    assert (a, b) == ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])      # questions 0, 2, 5: covered by both, semantic
    assert E.paired_answers("10", "11") == ([1.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError):
        E.paired_answers("1", "11")


def _w2v_metrics(sg_sem: str, cbow_sem: str, sg_syn: str, cbow_syn: str, kq_rank=1, segments=None):
    """Stage metrics with each mode's answers to a question set laid out as questions-words is (semantic
    sections first: 8,869 semantic then 10,675 syntactic questions)."""
    def mode(sem, syn, rank, segs):
        answers = sem + "-" * (8869 - len(sem)) + syn + "-" * (10675 - len(syn))
        return {"analogies": {"answers": answers, "source": "questions-words",
                              "semantic": {"questions": 8869}, "syntactic": {"questions": 10675}},
                "words_per_sec": 1.0, "segments": segs,
                "king_queen": {"rank": rank, "cosine": 0.7, "top": [["queen", 0.7]], "restrict_vocab": 30000}}
    segs = segments or ([[1, 100_000, 0.1 + 0.01 * (i % 3)] for i in range(20)],
                        [[1, 100_000, 0.3 + 0.01 * (i % 5)] for i in range(20)])
    return {"corpus": {"tokens": 2_000_000}, "cbow": mode(cbow_sem, cbow_syn, 9, segs[0]),
            "skipgram": mode(sg_sem, sg_syn, kq_rank, segs[1])}


def test_stage_claims_by_the_protocol():
    from hfrepro.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
    from hfrepro.reproduce.embeddings import claims_from

    # 1,000 semantic questions: skip-gram right on 300, CBOW on 200 (100 more, none fewer): clearly ahead;
    # 2,000 syntactic: CBOW 400, skip-gram 600: CBOW clearly behind
    sg_sem, cbow_sem = "1" * 300 + "0" * 700, "1" * 200 + "0" * 800
    sg_syn, cbow_syn = "1" * 600 + "0" * 1400, "1" * 400 + "0" * 1600
    c = claims_from(_w2v_metrics(sg_sem, cbow_sem, sg_syn, cbow_syn))
    d = c["w2v-skipgram-semantic"]
    assert d.verdict == REPRODUCED and d.estimate == pytest.approx(0.1) and d.lo > 0
    assert "30.0% vs CBOW 20.0% on 1,000 covered semantic questions (of 8,869)" in d.evidence
    d = c["w2v-cbow-syntactic"]
    assert d.verdict == NOT_REPRODUCED and d.estimate == pytest.approx(-0.1) and d.hi < 0
    # speed: CBOW's stretches take ~0.11 s, skip-gram's ~0.32 s for the same 100,000 words
    d = c["w2v-cbow-faster"]
    assert d.verdict == REPRODUCED and d.estimate == pytest.approx(np.mean([.3, .31, .32, .33, .34]) /
                                                                 np.mean([.1, .11, .12]), rel=0.02)
    assert "20 timed stretches" in d.uncertainty
    assert c["w2v-king-queen"].verdict == REPRODUCED and c["w2v-king-queen"].estimate == 1
    # inside the band: 6 more right answers and 4 fewer out of 1,000 is no decision either way
    c = claims_from(_w2v_metrics("1" * 206 + "0" * 794, "0" * 6 + "1" * 204 + "0" * 790, sg_syn, cbow_syn, 6))
    assert c["w2v-skipgram-semantic"].verdict == INCONCLUSIVE
    assert c["w2v-king-queen"].verdict == NOT_REPRODUCED            # queen 6th: outside the top 5
    # too few covered questions, too few timings, no queen: nothing decided
    slow = ([[1, 100_000, 0.1]], [[1, 100_000, 0.3]])
    c = claims_from(_w2v_metrics("1" * 10, "0" * 10, sg_syn, cbow_syn, None, segments=slow))
    d = c["w2v-skipgram-semantic"]
    assert d.verdict == INCONCLUSIVE and "only 10 semantic" in d.evidence
    assert c["w2v-cbow-faster"].verdict == INCONCLUSIVE and c["w2v-king-queen"].verdict == INCONCLUSIVE


def test_speed_ratio_by_hand():
    from hfrepro.reproduce.embeddings import speed_ratio

    est, lo, hi, n = speed_ratio([[1, 100, 1.0], [1, 300, 1.0]], [[1, 100, 2.0], [1, 300, 2.0]])
    assert (est, lo, hi, n) == (2.0, 2.0, 2.0, 2)      # every stretch twice as fast: no spread at all
    est, lo, hi, n = speed_ratio([[1, 100, 1.0], [1, 100, 2.0]], [[1, 100, 2.0], [1, 100, 2.0]])
    assert est == pytest.approx((200 / 3) / 50) and lo == pytest.approx(1.0) and hi == pytest.approx(2.0)


def test_stage_korean_section_says_why_the_analogy_cannot_be_asked():
    from hfrepro.reproduce.embeddings import korean_markdown

    demo = {"vocab_size": 6059, "error": "not in the vocabulary", "neighbours": {"대통령": ["국회", "국민"]},
            "corpus_counts": {"한국": 1, "서울": 0, "파리": 0, "프랑스": 2}}
    md = "\n".join(korean_markdown({"corpus": {"tokens": 365_429}}, {"epochs": 3, "min_count": 5}, demo))
    assert "365,429 tokens" in md and "3 epoch(s), 6,059 words" in md
    assert "서울, 파리 never occur and 한국, 프랑스 occur fewer than min_count=5 times" in md
    assert "| 대통령 | 국회, 국민 |" in md


# --- the command line: one process each for the exit code ------------------------------------------------

def test_cli_oov_and_non_utf8_exit_2(tmp_path):
    V.save_folder(_toy_kv(), tmp_path / "m", {"mode": "skipgram"}, text_format=False)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "hfrepro", "embeddings", "analogy", "king", "man", "wman",
                        "--vectors", str(tmp_path / "m")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "'wman' (close: woman" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "pairs.tsv"
    bad.write_bytes(b"king\tqueen\t9.0\n\xc7\xd1\xb1\xb9\tman\t1.0\n")  # line 2 is EUC-KR
    r = subprocess.run([sys.executable, "-m", "hfrepro", "embeddings", "evaluate", "--analogies", "", "--pairs",
                        str(bad), "--vectors", str(tmp_path / "m")], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 2 and "not valid UTF-8" in r.stderr and f"{bad}:2" in r.stderr
    assert "Traceback" not in r.stderr


def test_recipe_pushes_each_mode_without_pickles(tmp_path, monkeypatch):
    """--push_to_hub through the real HfApi to tests/hubfakes.FakeHub: one commit per mode."""
    import huggingface_hub.constants as c
    from hubfakes import FakeHub

    from hfrepro.cli import run_recipe

    token = "hf_w2vFAKEtokenDoNotLeak0123456789"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(s) for s in _synthetic(300)) + "\n", encoding="utf-8")
    with FakeHub(tmp_path / "hub", token=token) as h:
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            monkeypatch.delenv(v, raising=False)
        monkeypatch.setattr(c, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        monkeypatch.setenv("HF_TOKEN", token)
        run_recipe("word2vec", ["--corpus", str(corpus), "--epochs", "1", "--vector_size", "8", "--min_count", "1",
                                "--analogies", "", "--pair_sets", "", "--classify", "", "--plot_pairs", "",
                                "--disable_tqdm", "--save_text_format", "--output_dir", str(tmp_path / "run"),
                                "--push_to_hub", "--hub_model_id", "alice/w2v"])
        assert sorted(x["repo_id"] for x in h.commits) == ["alice/w2v-cbow", "alice/w2v-skipgram"]
        for commit in h.commits:
            files = commit["files"]
            assert {"model.safetensors", "vocab.txt", "config.json", "vectors.txt", "README.md",
                    "config.yaml", "metrics.json"} <= set(files)
            assert not [p for p in files if p.endswith((".kv", ".model")) or "checkpoint" in p]
            assert commit["repo_id"].encode() in files["README.md"]
            assert not any(token.encode() in b for b in files.values())


def test_timed_tokens_cuts_the_corpus_into_timed_stretches():
    from hfrepro.embeddings.epochs import TimedTokens

    sents = [["a", "b", "c"]] * 10
    timed = TimedTokens(sents, every=10)
    assert list(timed) == sents                       # gensim sees the corpus unchanged
    assert [n for n, _ in timed.segments] == [12, 12]   # 4 sentences each; the last 6 tokens are no full stretch
    assert all(sec >= 0 for _, sec in timed.segments)

    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    bar = Bar()
    assert list(TimedTokens(sents, every=10, bar=bar)) == sents
    assert bar.n == 30                                  # every token once, the partial stretch included
