"""hfrepro's own `evaluate` metric modules, loadable by name from any directory, offline.

    import hfrepro.metrics
    bleu = hfrepro.metrics.load("bleu")                 # = evaluate.load("<installed hfrepro>/metrics/bleu")
    bleu.compute(predictions=["the cat sat"], references=[["the cat sat"]])
    ppl = hfrepro.metrics.load("perplexity")
    ppl.compute(predictions=["To be, or not to be\\n"], model_id="smollm2-135m-instruct")  # embedded names work

`evaluate.load("bleu")` looks for `./bleu/bleu.py` under the working directory and then on the Hub, so it fails
offline and depends on where you stand; `evaluate.load("hfrepro/bleu")` names a Hub Space. `load(name)` hands
`evaluate.load` the module's absolute path inside the installed package instead, which works from anywhere
and never touches the network. Each module is a folder `hfrepro/metrics/<name>/<name>.py` holding an
`evaluate.Metric` subclass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hfrepro.errors import UserError

METRICS_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    """The names `load` accepts: every folder here holding `<name>/<name>.py`."""
    return sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())


def path(name: str) -> Path:
    """The folder of metric `name` (what `evaluate.load` wants); a UserError naming the choices otherwise."""
    key = str(name).strip().removeprefix("hfrepro/").removeprefix("hfrepro.")
    if key not in available():
        raise UserError(f"unknown hfrepro metric {name!r}", fix=f"use one of: {', '.join(available())}")
    return METRICS_DIR / key


def load(name: str, **kwargs: Any):
    """`evaluate.load` of hfrepro's metric `name` ("bleu", "perplexity"; "hfrepro/bleu" too), offline, from any
    working directory. `kwargs` go to `evaluate.load` (config_name, experiment_id, ...)."""
    import evaluate

    return evaluate.load(str(path(name)), **kwargs)
