"""What a Hugging Face user gets from a run: every model folder's card checked, and the folder loaded the way its
card's `library_name` says, offline.

    python scripts/check_cards.py runs/reproduce          # any run folder or a whole main-job folder
    from hfrepro.hubcheck import check_tree
    rows = check_tree("runs/reproduce")                    # one row per model folder, with its problems

The card rules are `hfrepro.cards.check_model_folder` (license, base_model Hub id, datasets, pipeline_tag, a true
library_name, a model-index of the run's held-out numbers); loading is `check_loads`: transformers folders with
the Auto class their architecture names (`import hfrepro` registers hfrepro's own model types), peft adapters on
their base (the embedded copy where the card's Hub id comes from one), gensim vectors from safetensors, hfrepro's
n-gram LM and RL agents with their own loaders. A folder is a model folder when it holds a README.md and config.json or
adapter_config.json; a dataset card beside results (the few-shot stage) is not one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from hfrepro.cards import auto_class, check_model_folder, embedded_copy_of, read_json_or_empty
from hfrepro.embeddings import vectors
from hfrepro.hub import EXCLUDE_DIRS
from hfrepro.lm.ngram import NgramLM
from hfrepro.models import load_causal_lm


@dataclass
class FolderCheck:
    path: Path
    meta: dict
    problems: list[str] = field(default_factory=list)
    loaded: str = ""  # what loaded it, e.g. "AutoModelForCausalLM -> GPT2LMHeadModel"

    def row(self, root: Path) -> dict:
        m = self.meta
        n = sum(len(r.get("metrics", [])) for e in m.get("model-index") or [] for r in e.get("results", []))
        return {"folder": str(self.path.relative_to(root)) if self.path != root else ".",
                "library": m.get("library_name"), "pipeline": m.get("pipeline_tag"), "license": m.get("license"),
                "base_model": m.get("base_model") or "", "datasets": ", ".join(m.get("datasets") or []),
                "held-out metrics": n, "loads with": self.loaded or "-",
                "problems": "; ".join(self.problems) or "none"}


def model_folders(root: str | Path) -> list[Path]:
    """Every model folder under `root` (itself included), checkpoints and logs left out."""
    root = Path(root)
    found = []
    for readme in sorted(root.rglob("README.md")):
        d = readme.parent
        rel = d.relative_to(root).parts
        if any(EXCLUDE_DIRS.match(p) for p in rel):
            continue
        if (d / "config.json").is_file() or (d / "adapter_config.json").is_file():
            found.append(d)
    return found


def check_loads(folder: str | Path, library: str | None) -> tuple[str, list[str]]:
    """Load `folder` as its card's `library_name` says, offline. Returns (what loaded it, problems)."""
    folder = Path(folder)
    try:
        if library == "transformers":
            import transformers

            cls, _ = auto_class(folder)
            model = getattr(transformers, cls).from_pretrained(str(folder))
            return f"{cls} -> {type(model).__name__}", []
        if library == "peft":
            return _load_adapter(folder)
        if library == "gensim":
            kv = vectors.load(folder)
            return f"gensim KeyedVectors ({len(kv.index_to_key):,} words x {kv.vector_size})", []
        if library == "hfrepro" and (folder / "vocab.json").is_file():
            lm, _ = NgramLM.from_pretrained(folder)
            return f"hfrepro.lm.ngram.NgramLM (order {lm.order})", []
        if library == "hfrepro" and "env_id" in read_json_or_empty(folder / "config.json"):
            from hfrepro.rlbasics import saved

            agent = saved.load(folder)
            return f"hfrepro.rlbasics.saved.load ({agent.algorithm} on {agent.env_id})", _replays(agent, folder)
    except Exception as e:  # noqa: BLE001 - the finding
        return "", [f"does not load as {library}: {type(e).__name__}: {str(e).splitlines()[0][:200]}"]
    return "", [f"no loader known for library_name {library!r}"]


def _replays(agent, folder: Path) -> list[str]:
    """An RL agent's card states its held-out evaluation (eval.json); the loaded agent must score it again on
    the same test episodes, or the weights are not the ones evaluated."""
    import numpy as np

    from hfrepro.rlbasics import saved

    ev = read_json_or_empty(folder / "eval.json")
    if not ev:
        return []
    got = float(np.mean(saved.rewards(agent, ev["n_eval_episodes"], ev["eval_seeds"][0])))
    if abs(got - ev["mean_reward"]) > 1e-9:
        return [f"the loaded agent scores mean_reward {got:.4g} on eval.json's test episodes, the card "
                f"{ev['mean_reward']:.4g}"]
    return []


def _load_adapter(folder: Path) -> tuple[str, list[str]]:
    import transformers
    from peft import PeftModel

    cfg = read_json_or_empty(folder / "adapter_config.json")
    task = cfg.get("task_type") or "CAUSAL_LM"
    if task == "CAUSAL_LM":
        model = load_causal_lm(str(folder))
    else:
        cls = {"SEQ_CLS": "AutoModelForSequenceClassification", "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
               "TOKEN_CLS": "AutoModelForTokenClassification"}[task]
        base = embedded_copy_of(cfg.get("base_model_name_or_path")) or cfg.get("base_model_name_or_path")
        model = PeftModel.from_pretrained(getattr(transformers, cls).from_pretrained(str(base)), str(folder))
    base = embedded_copy_of(cfg.get("base_model_name_or_path"))
    return (f"PeftModel on {'the embedded copy of ' if base else ''}{cfg.get('base_model_name_or_path')} "
            f"({type(model.get_base_model()).__name__})"), []


def check_folder(folder: str | Path, root: str | Path | None = None, load: bool = True) -> FolderCheck:
    from huggingface_hub import ModelCard

    folder = Path(folder)
    problems = check_model_folder(folder, root=root)
    try:
        meta = ModelCard.load(folder / "README.md").data.to_dict()
    except Exception:  # noqa: BLE001 - already among the problems
        meta = {}
    out = FolderCheck(folder, meta, problems)
    if load and meta:
        out.loaded, more = check_loads(folder, meta.get("library_name"))
        out.problems += more
    return out


def check_tree(root: str | Path, load: bool = True) -> list[FolderCheck]:
    root = Path(root)
    return [check_folder(d, root=root, load=load) for d in model_folders(root)]


def to_json(checks: list[FolderCheck], root: Path) -> str:
    return json.dumps([c.row(root) for c in checks], indent=2, ensure_ascii=False)
