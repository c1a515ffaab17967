"""A bridge to lm-evaluation-harness (`lm_eval`): export an hfrepro task as an lm-eval task, score it there.

    hfrepro fewshot-tasks export-lm-eval capital_mc --out runs/lmeval-tasks
    lm_eval --model hf --model_args pretrained=$(hfrepro assets path smollm2-135m-instruct),dtype=float32 \
        --include_path runs/lmeval-tasks --tasks hfrepro_capital_mc --num_fewshot 3 --device cpu

The export writes the questions, answers and choices already rendered by hfrepro (columns `_question`,
`_answer`, `_choices`, `_gold`) next to an lm-eval YAML that names those columns, so both tools see the
same strings. The demonstration file holds hfrepro's fixed demonstrations in hfrepro's order, and the
lm-eval task uses the `first_n` sampler: k-shot prompts are identical in both tools (`demos="fixed"`,
`prompt_format="raw"`).

Exact match in lm-eval knows `ignore_case`, `ignore_punctuation` (ASCII punctuation) and regexes to drop;
hfrepro's `strip`, `lower` and `punctuation` steps map onto those. `whitespace` (collapse inner runs)
and `nfkc` have no lm-eval equivalent: the export says so, and scores may then differ on rare answers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hfrepro.errors import UserError
from hfrepro.fewshot.evaluator import demo_order
from hfrepro.fewshot.tasks import Task, load_task


def export_task(task: "Task | str", out_dir: str | Path, max_shots: int = 8, seed: int = 1234,
                limit: int | None = None) -> tuple[Path, list[str]]:
    """Write `<out>/hfrepro_<name>.yaml` + its data files. Returns (yaml path, approximation notes)."""
    import yaml

    task = load_task(task)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    def rendered(r: dict) -> dict:
        d = {"_question": task.question(r), "_answer": task.target(r)}
        if task.scoring == "multiple_choice":
            d["_choices"] = task.choice_list(r)
            d["_gold"] = task.gold_index(r)
        elif task.aliases:
            d["_answers"] = task.accepted(r)
        return d

    demos = [task.demo_rows()[i] for i in demo_order(task, max_shots, seed)]
    files = {"test": out / f"hfrepro_{task.name}_test.jsonl", "train": out / f"hfrepro_{task.name}_demos.jsonl"}
    files["test"].write_text("".join(json.dumps(rendered(r), ensure_ascii=False) + "\n"
                                     for r in task.test_rows(limit)), encoding="utf-8")
    files["train"].write_text("".join(json.dumps(rendered(r), ensure_ascii=False) + "\n" for r in demos),
                              encoding="utf-8")
    cfg: dict[str, Any] = {
        "task": f"hfrepro_{task.name}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {k: str(v) for k, v in files.items()}},
        "test_split": "test",
        "fewshot_split": "train",
        "fewshot_config": {"sampler": "first_n"},
        "doc_to_text": "_question",
        "target_delimiter": task.target_delimiter,
        "fewshot_delimiter": task.separator,
    }
    if task.header():
        cfg["description"] = task.header()
    if task.scoring == "multiple_choice":
        cfg.update({"output_type": "multiple_choice", "doc_to_choice": "_choices", "doc_to_target": "_gold",
                    "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                                    for m in task.metric]})
    else:
        if task.answer_regex:
            notes.append("answer_regex is applied by hfrepro only (lm-eval scores the whole cut generation)")
        for step in ("whitespace", "nfkc"):
            if step in task.normalize:
                notes.append(f"normalisation step {step!r} has no lm-eval equivalent")
        if task.metric[0] != "exact_match":
            notes.append(f"metric {task.metric[0]!r} is exported as exact_match")
        uni = [c for r in task.test_rows(limit) for c in task.target(r) if not c.isascii()]
        if "punctuation" in task.normalize and uni:
            notes.append("hfrepro drops all Unicode punctuation, lm-eval only ASCII punctuation")
        m: dict[str, Any] = {"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                             "ignore_case": "lower" in task.normalize,
                             "ignore_punctuation": "punctuation" in task.normalize}
        if "strip" in task.normalize or "whitespace" in task.normalize:
            m["regexes_to_ignore"] = ["^\\s+", "\\s+$"]
        cfg.update({"output_type": "generate_until", "doc_to_target": "_answers" if task.aliases else "_answer",
                    "generation_kwargs": {"until": list(task.stop), "max_gen_toks": task.max_new_tokens,
                                          "do_sample": False},
                    "metric_list": [m]})
    path = out / f"hfrepro_{task.name}.yaml"
    path.write_text("# Exported by hfrepro (hfrepro/fewshot/lmeval.py) from task "
                    f"{task.where}\n" + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path, notes


def run_lm_eval(model, tokenizer, task: "Task | str", shots: list[int], limit: int | None = None,
                seed: int = 1234, batch_size: int = 32, work_dir: str | Path | None = None,
                device: str = "cpu") -> dict:
    """Score `task` with lm-eval's HFLM on the same model object. Returns {"scores": {k: {metric: v}},
    "seconds": float, "examples": int, "samples": {k: [lm-eval sample dicts]}}."""
    import tempfile

    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UserError("lm-evaluation-harness is not installed", fix="pip install lm_eval") from None
    task = load_task(task)
    work = Path(work_dir or tempfile.mkdtemp(prefix="hfrepro-lmeval-"))
    path, _ = export_task(task, work, max_shots=max(shots), seed=seed, limit=limit)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)
    tm = TaskManager(include_path=str(work))
    name = f"hfrepro_{task.name}"
    out: dict[str, Any] = {"scores": {}, "samples": {}, "seconds": 0.0, "examples": 0}
    for k in shots:
        t0 = time.time()
        res = lm_eval.simple_evaluate(model=lm, tasks=[name], num_fewshot=k, task_manager=tm, limit=limit,
                                      log_samples=True, bootstrap_iters=0, verbosity="ERROR",
                                      fewshot_random_seed=seed)
        out["seconds"] += time.time() - t0
        r = res["results"][name]
        scores = {m.split(",")[0]: v for m, v in r.items() if "," in m and not m.split(",")[0].endswith("_stderr")}
        n = len(res["samples"][name])
        out["scores"][k] = {"n": n, **scores}
        out["samples"][k] = res["samples"][name]
        out["examples"] += n
    return out
