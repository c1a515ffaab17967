"""Stage 4: zero-, one- and few-shot in-context evaluation (GPT-3, "Language Models are Few-Shot Learners").

The Python API (stable; other stages use it for their baselines):

    from hfrepro.fewshot import evaluate, load_task, builtin_tasks
    res = evaluate("smollm2-135m-instruct", ["uppercase", "capital_mc"], shots=[0, 1, 3, 8], limit=50)
    res.accuracy("uppercase", 8)        # headline metric of the task at 8 shots
    res.scores                          # {task: {shots: {"n": ..., metric: value, ...}}}
    res.save("runs/fewshot/x")          # results.json, table.md, samples/, accuracy_vs_shots.png

    evaluate(model_obj, tasks, tokenizer=tok)                       # an already loaded model
    evaluate("smollm2-135m-instruct", tasks, adapter="runs/sft/model")   # base + LoRA adapter

Tasks are YAML files (hfrepro/fewshot/tasks/*.yaml, or your own path); see hfrepro.fewshot.tasks.
"""

from __future__ import annotations

from hfrepro.fewshot.tasks import Task, builtin_tasks, load_task, load_tasks, normalize

__all__ = ["evaluate", "FewShotResults", "Task", "builtin_tasks", "load_task", "load_tasks", "normalize",
           "build_prompt", "demonstrations", "save_results", "load_results", "plot_accuracy"]


def __getattr__(name):  # torch/transformers are imported only when the evaluator is used
    if name in ("evaluate", "FewShotResults", "build_prompt", "demonstrations"):
        from hfrepro.fewshot import evaluator
        return getattr(evaluator, name)
    if name in ("save_results", "load_results", "plot_accuracy"):
        from hfrepro.fewshot import report
        return getattr(report, name)
    raise AttributeError(name)
