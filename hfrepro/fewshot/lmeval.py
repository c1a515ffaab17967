"""The same task files scored by lm-evaluation-harness (`lm_eval`, a dev dependency): the agreement test and
`bench/fewshot.py` call it. hfrepro's tasks are lm-eval task YAMLs, so nothing is translated: lm-eval reads
the task folder as it is (`TaskManager(include_path=...)`), exactly as `lm_eval --include_path FOLDER` does.

    out = run_lm_eval(model, tokenizer, "capital_mc", shots=[3], limit=12)
    out["scores"][3]["acc"], out["samples"][3]          # lm-eval's score and its logged samples
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hfrepro.errors import UserError
from hfrepro.fewshot.tasks import TASKS_DIR, load_task


def run_lm_eval(model, tokenizer, task: str, shots: list[int], limit: int | None = None, seed: int = 1234,
                batch_size: int = 32, include_path: str | Path | None = None, device: str = "cpu") -> dict:
    """Score `task` (a built-in name, a name under `include_path`, or a YAML path) with lm-eval's HFLM on the
    same model object, at each k of `shots`. Returns {"scores": {k: {"n": .., metric: value}}, "samples":
    {k: [lm-eval's sample records]}, "seconds": float, "examples": int}."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UserError("lm-evaluation-harness is not installed", fix="pip install lm_eval") from None
    t = load_task(task, include_path=include_path)
    folder = t.path.parent if t.path else Path(include_path or TASKS_DIR)
    tm = TaskManager(include_path=str(folder), include_defaults=False)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=device)
    out: dict[str, Any] = {"scores": {}, "samples": {}, "seconds": 0.0, "examples": 0}
    for k in shots:
        t0 = time.time()
        res = lm_eval.simple_evaluate(model=lm, tasks=[t.name], num_fewshot=k, task_manager=tm, limit=limit,
                                      log_samples=True, bootstrap_iters=0, fewshot_random_seed=seed)
        out["seconds"] += time.time() - t0
        r = res["results"][t.name]
        scores = {m.split(",")[0]: v for m, v in r.items() if "," in m and not m.split(",")[0].endswith("_stderr")}
        out["scores"][k] = {"n": len(res["samples"][t.name]), **scores}
        out["samples"][k] = res["samples"][t.name]
        out["examples"] += out["scores"][k]["n"]
    return out
