"""Stage 1 (word2vec) on the real embedded assets, at the smallest real size."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfrepro.errors import UserError

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def _train(tmp_path, **kw):
    from hfrepro.recipes.word2vec import cli
    args = {"epochs": 1, "classify": "", "plot_pairs": "", "output_dir": tmp_path / "run", **kw}
    argv = [x for k, v in args.items() for x in (f"--{k}", str(v))]
    return cli([*argv, "--disable_tqdm"]), Path(args["output_dir"])


def test_english_corpus_uses_every_source_and_keeps_test_pages_out():
    from hfrepro.embeddings.text import ENGLISH, lo_help_split, load_corpus, tokenize

    c = load_corpus("english", seed=0)
    assert c.tokens > 7_000_000 and c.language == "en"
    assert [s["source"].split(" ")[0] for s in c.sources] == list(ENGLISH) and all(s["tokens"] for s in c.sources)
    dd = lo_help_split("lo-help-en")
    pages = {k: set(dd[k]["page"][:]) for k in dd}
    assert not pages["train"] & pages["test"] and not pages["train"] & pages["validation"]
    lo = next(s for s in c.sources if s["source"].startswith("lo-help-en"))
    assert lo["rows"] == sum(1 for t in dd["train"]["text"][:] if t and tokenize(t))  # train pages only


def test_questions_words_eval_matches_gensim_on_a_real_model(tmp_path):
    from gensim.test.utils import datapath

    from hfrepro.embeddings.vectors import load

    m, out = _train(tmp_path, corpus="kjv", modes="cbow", pair_sets="")
    kv = load(out / "cbow")
    _, theirs = kv.evaluate_word_analogies(datapath("questions-words.txt"))
    ours = m["cbow"]["analogies"]
    assert ours["total"]["questions"] == 19_544
    g = {s["section"]: (len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in theirs}
    for s in ours["sections"]:
        assert (s["correct"], s["covered"]) == g[s["section"]], s["section"]
    assert ours["total"]["covered"] == g["Total accuracy"][1] > 500


def test_korean_model_hangul_and_the_honest_analogy(tmp_path):
    from hfrepro.embeddings import vectors
    from hfrepro.hubcheck import check_tree

    m, out = _train(tmp_path, corpus="korean", modes="skipgram", vector_size=50, analogies="", classify="auto")
    assert m["corpus"]["language"] == "ko" and m["skipgram"]["benchmarks"].startswith("skipped")
    # no analogy to ask in Korean: the card's held-out number is classification of the lo-help-ko test pages
    (check,) = check_tree(out)
    assert check.problems == [], check.problems
    (results,) = [e["results"] for e in check.meta["model-index"]]
    assert {r["dataset"]["type"]: r["dataset"]["split"] for r in results} == {"lo-help-ko": "test"}
    row = next(r for r in m["classification"]["results"] if r["classifier"].startswith("averaged skipgram"))
    assert {x["type"]: x["value"] for x in results[0]["metrics"]} == {
        "classification_accuracy": row["accuracy"], "classification_macro_f1": row["macro_f1"]}
    kv = vectors.load(out / "skipgram")
    with pytest.raises(UserError) as e:
        vectors.analogy(kv, "한국", "서울", "파리")
    assert "'서울'" in e.value.what and "'파리'" in e.value.what
    near = vectors.similar(kv, "대통령", topn=5)
    assert len(near) == 5 and any("\uac00" <= ch <= "\ud7a3" for w, _ in near for ch in w)


def test_recipe_non_utf8_corpus_exits_2_with_the_line(tmp_path):
    """`hfrepro word2vec` from a folder outside the checkout; a bad corpus is a clear error, exit code 2."""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\n\xc7\xd1\xb1\xb9 euc-kr text\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "hfrepro", "word2vec", "--corpus", str(bad), "--output_dir", "run",
                        "--disable_tqdm"], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "not valid UTF-8" in r.stderr and f"{bad}:2" in r.stderr and "Traceback" not in r.stderr


def test_tiny_budget_from_outside_the_checkout(tmp_path):
    """`hfrepro word2vec --budget tiny` from any folder: the budget's YAML ships with the package."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "hfrepro", "word2vec", "--budget", "tiny", "--output_dir", "w2v", "--disable_tqdm"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path / "w2v" / "metrics.json").read_text())
    assert m["corpus"]["spec"] == "kjv,shakespeare,lo-help-en" and m["skipgram"]["epoch"] == 1
    assert m["classification"]["train"] == 5000 and (tmp_path / "w2v" / "analogy_pca.png").is_file()
    assert m["skipgram"]["analogies"]["total"]["covered"] > 1000


def test_killed_recipe_resumes_after_the_last_epoch(tmp_path):
    """SIGKILL the recipe after its first checkpoint; the same command continues from there."""
    import signal
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "recipes/word2vec.py", "--corpus", "kjv", "--modes", "skipgram", "--epochs", "3",
           "--vector_size", "32", "--analogies", "", "--pair_sets", "", "--classify", "", "--plot_pairs", "",
           "--disable_tqdm", "--output_dir", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = out / "skipgram"
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None and not list(ck.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.2)
    assert p.poll() is None, "the run finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (out / "skipgram" / "model.safetensors").exists()
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())["skipgram"]
    assert m["resumed_from_epoch"] >= 1 and m["epoch"] == 3
    assert (out / "skipgram" / "model.safetensors").is_file()
