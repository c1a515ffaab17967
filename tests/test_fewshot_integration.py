"""Stage 6 on the real embedded SmolLM2-135M-Instruct: the few-shot effect; the same task files scored by
lm-evaluation-harness (ours read by lm-eval from our task folder, a user's lm-eval YAML run by `hfrepro
fewshot`) with identical accuracies on identical prompts; the shipped task data rebuilt from the embedded
datasets; the command line's exit code on a bad task."""

from __future__ import annotations

import json

import pytest

from hfrepro.fewshot.evaluator import evaluate
from hfrepro.fewshot.tasks import TASKS_DIR
from tests.conftest import run_cli

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smol():
    from hfrepro.models import load_causal_lm, load_tokenizer
    return load_causal_lm(MODEL), load_tokenizer(MODEL)


def test_few_shot_beats_zero_shot_on_capital_letters(smol):
    model, tok = smol
    res = evaluate(model, ["uppercase"], shots=[0, 8], tokenizer=tok, limit=16, progress=False)
    zero, few = res.accuracy("uppercase", 0), res.accuracy("uppercase", 8)
    assert few >= zero + 0.25, (zero, few)
    s = res.samples["uppercase"][8][0]
    assert s["prompt"].count("=>") == 9 and s["prompt"].startswith("Write each word in capital letters.\n")


def test_our_task_files_run_in_lm_eval_with_the_same_accuracy(smol):
    """lm-eval reads hfrepro/fewshot/tasks as it is (TaskManager(include_path=...)): the same prompts, the same
    log-likelihoods and generations, identical accuracies."""
    pytest.importorskip("lm_eval")
    from hfrepro.fewshot.lmeval import run_lm_eval

    model, tok = smol
    for task, limit in (("capital_mc", 12), ("uppercase", 8)):
        ours = evaluate(model, [task], shots=[3], tokenizer=tok, limit=limit, progress=False)
        theirs = run_lm_eval(model, tok, task, [3], limit=limit, include_path=TASKS_DIR)
        for metric in ours.tasks[task]["metrics"]:
            assert ours.scores[task][3][metric] == pytest.approx(theirs["scores"][3][metric], abs=1e-9), (task, metric)
        assert theirs["scores"][3]["n"] == limit
        lm_s = sorted(theirs["samples"][3], key=lambda s: s["doc_id"])
        for o, t in zip(ours.samples[task][3], lm_s):
            assert t["arguments"][0][0] == o["prompt"]
            if task == "capital_mc":
                assert [round(r[0][0], 3) for r in t["resps"]] == pytest.approx(
                    [round(x, 3) for x in o["loglikelihoods"]], abs=2e-3)
            else:
                assert t["filtered_resps"][0] == o["prediction"]


def test_a_user_lm_eval_yaml_runs_unchanged_in_hfrepro(smol, tmp_path):
    """A user's lm-eval task over local JSONL (a Korean name, lm-eval's default sampler: a seeded draw per test
    example) through `hfrepro fewshot --tasks task.yaml`, and through lm-eval: identical prompts and accuracy."""
    pytest.importorskip("lm_eval")
    from hfrepro.fewshot.lmeval import run_lm_eval

    rows = [json.loads(x) for x in (TASKS_DIR / "data/words.jsonl").read_text().splitlines()]
    for split, n in (("test", 8), ("train", 30)):
        mine = [{"w": r["word"], "W": r["upper"]} for r in rows if r["split"] == split][:n]
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mine))
    yaml_text = f"""task: 대문자
dataset_path: json
dataset_kwargs:
  data_files:
    train: {tmp_path}/train.jsonl
    test: {tmp_path}/test.jsonl
training_split: train
test_split: test
fewshot_split: train
output_type: generate_until
description: "Write each word in capital letters.\\n"
doc_to_text: "{{{{w}}}} =>"
doc_to_target: "{{{{W}}}}"
fewshot_delimiter: "\\n"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: false
"""
    task = tmp_path / "caps.yaml"
    task.write_text(yaml_text, encoding="utf-8")
    out = tmp_path / "run"
    r = run_cli("fewshot", "--tasks", task, "--shots", "2", "--limit", "8", "--seed", "1234", "--output_dir", out,
                "--demos", "task", "--progress", "false", cwd=tmp_path)   # the budgets say fixed; lm-eval's sampler
    assert r.returncode == 0, r.stderr[-3000:]
    ours = json.loads((out / "metrics.json").read_text())["scores"][MODEL]["대문자"]["2"]
    model, tok = smol
    theirs = run_lm_eval(model, tok, str(task), [2], limit=8, seed=1234)
    assert ours["n"] == theirs["scores"][2]["n"] == 8
    assert ours["exact_match"] == pytest.approx(theirs["scores"][2]["exact_match"], abs=1e-9)
    samples = [json.loads(x) for x in (out / f"samples/{MODEL}/대문자.jsonl").read_text().splitlines()]
    lm_s = sorted(theirs["samples"][2], key=lambda s: s["doc_id"])
    assert [s["prompt"] for s in samples] == [t["arguments"][0][0] for t in lm_s]
    assert len({s["prompt"].split("\n")[1] for s in samples}) > 1      # a draw per test example, as lm-eval's


def test_shipped_task_data_is_rebuilt_identically():
    from hfrepro.fewshot.builtin import DATA_DIR, build_all, to_jsonl

    for name, rows in build_all().items():
        assert (DATA_DIR / name).read_text(encoding="utf-8") == to_jsonl(rows), name


def test_cli_bad_task_file_exits_2(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"q": "a"}\n')
    (tmp_path / "t.yaml").write_text(f'task: t\ndataset_path: json\ndataset_kwargs: {{data_files: {{test: '
                                     f'{tmp_path}/d.jsonl}}}}\ntest_split: test\ndoc_to_text: "{{{{q}}}} ="\n'
                                     'doc_to_target: "{{q}}"\nmetric_list: [{metric: bleu}]\n')
    r = run_cli("fewshot", "--tasks", tmp_path / "t.yaml", "--output_dir", tmp_path / "out")
    assert r.returncode == 2, r.stderr
    assert "metric 'bleu' is not implemented" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
