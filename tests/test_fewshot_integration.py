"""Stage 4 on the real embedded SmolLM2-135M-Instruct: the few-shot effect, agreement with lm-evaluation-harness,
the shipped task data rebuilt from the embedded datasets, and the command line's exit code on a bad task."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smol():
    from hfrepro.models import load_causal_lm, load_tokenizer
    return load_causal_lm(MODEL), load_tokenizer(MODEL)


def test_few_shot_beats_zero_shot_on_capital_letters(smol):
    from hfrepro.fewshot import evaluate

    model, tok = smol
    res = evaluate(model, ["uppercase"], shots=[0, 8], tokenizer=tok, limit=16, progress=False)
    zero, few = res.accuracy("uppercase", 0), res.accuracy("uppercase", 8)
    assert few >= zero + 0.25, (zero, few)
    s = res.samples["uppercase"][8][0]
    assert s["prompt"].count("=>") == 9 and s["prompt"].startswith("Write each word in capital letters.\n")


def test_same_accuracy_as_lm_evaluation_harness(smol, tmp_path):
    """capital_mc (log-likelihood) and uppercase (generation) on the same model and data, scored by lm-eval."""
    from hfrepro.fewshot import evaluate
    from hfrepro.fewshot.lmeval import run_lm_eval

    model, tok = smol
    for task, shots, limit in (("capital_mc", [3], 12), ("uppercase", [3], 8)):
        ours = evaluate(model, [task], shots=shots, tokenizer=tok, limit=limit, progress=False)
        theirs = run_lm_eval(model, tok, task, shots, limit=limit, work_dir=tmp_path / task)
        metric = ours.tasks[task]["metric"]
        for k in shots:
            assert theirs["scores"][k]["n"] == limit
            assert abs(ours.accuracy(task, k) - float(theirs["scores"][k][metric])) <= 0.01, (task, k)
        if task == "capital_mc":   # the same prompts and the same log-likelihoods, not only the same accuracy
            lm_s = sorted(theirs["samples"][3], key=lambda s: s["doc_id"])
            for ours_s, lm in zip(ours.samples[task][3], lm_s):
                assert lm["arguments"][0][0] == ours_s["prompt"]
                assert [round(r[0][0], 3) for r in lm["resps"]] == pytest.approx(
                    [round(x, 3) for x in ours_s["loglikelihoods"]], abs=2e-3)


def test_shipped_task_data_is_rebuilt_identically():
    from hfrepro.fewshot.builtin import DATA_DIR, build_all, to_jsonl

    for name, rows in build_all().items():
        assert (DATA_DIR / name).read_text(encoding="utf-8") == to_jsonl(rows), name


def test_cli_bad_task_file_exits_2(tmp_path):
    from tests.conftest import run_cli

    (tmp_path / "d.jsonl").write_text('{"q": "a", "split": "test"}\n{"q": "b", "split": "train"}\n')
    (tmp_path / "t.yaml").write_text('name: t\ntemplate: "{q} ="\nanswer: "{q}"\nmetric: bleu\ndata: d.jsonl\n')
    r = run_cli("fewshot", "--tasks", tmp_path / "t.yaml", "--output_dir", tmp_path / "out")
    assert r.returncode == 2, r.stderr
    assert "unknown metric 'bleu'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "results.json").exists()
