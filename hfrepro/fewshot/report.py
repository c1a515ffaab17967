"""Few-shot results: what the evaluator returns, and the results folder it is saved as.

    results.json                 scores by model, task and number of shots, plus the run's config
    table.md                     the same scores as a Markdown table (one row per model and task)
    accuracy_vs_shots.png        one panel per task, one line per model (GPT-3 Figure 1.2 style)
    samples/<model>/<task>.jsonl one line per (shots, test example): prompt, target, generation, prediction, ...
    README.md                    a dataset card for the folder (`write_results_card`), when it is shared
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from hfrepro.cards import dataset_card
from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json
from hfrepro.report import md_table, pyplot, save_figure

PLOT_CAPTION = ("*Accuracy against the number of demonstrations k, one panel per task, one line per model and prompt "
                "format (round markers: plain text, squares: the chat template, dashed: no instruction line): look for "
                "lines rising from k = 0; the dotted line is chance.*")


@dataclass
class FewShotResults:
    """What `evaluate` returns: scores by task and number of shots, plus every prompt and answer."""

    model: str
    config: dict[str, Any]
    # task -> k -> {"n": examples, <metric>: value, ...}; None when the prompts do not fit the model
    scores: dict[str, dict[int, dict[str, Any] | None]] = field(default_factory=dict)
    # task -> k -> one record per test example (prompt, target, prediction, <metric>: verdict, ...)
    samples: dict[str, dict[int, list[dict]]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> summary, metric, output_type, ...
    seconds: float = 0.0
    examples: int = 0  # scored (example, k) pairs

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0

    def accuracy(self, task: str, k: int, metric: str | None = None) -> float | None:
        """The task's headline metric (or `metric`) at k shots; None when the prompts did not fit."""
        s = self.scores[task].get(k)
        if s is None:
            return None
        return s[metric or self.tasks[task]["metric"]]

    def curve(self, task: str, metric: str | None = None) -> dict[int, float | None]:
        return {k: self.accuracy(task, k, metric) for k in self.scores[task]}

    def table_rows(self) -> list[dict]:
        """One row per task: metric, then one column per number of shots (for hfrepro.report.md_table)."""
        rows = []
        for t, by_k in self.scores.items():
            row = {"model": self.label, "task": t, "metric": self.tasks[t]["metric"],
                   "n": next((s["n"] for s in by_k.values() if s), 0)}
            for k, s in by_k.items():
                row[f"{k}-shot"] = None if s is None else s[self.tasks[t]["metric"]]
            rows.append(row)
        return rows

    @property
    def label(self) -> str:
        """A short name for tables and plots: the model (a path shortened to its last folders), + format."""
        name = self.model
        if "/" in name and Path(name.split("+")[0]).exists():
            parts = Path(name).parts
            name = "/".join(parts[-2:]) if parts[-1] in ("model", "adapter") and len(parts) > 1 else parts[-1]
        extra = [x for x in (self.config.get("prompt_format", "raw") != "raw" and self.config["prompt_format"],
                             self.config.get("instruction", True) is False and "no instruction") if x]
        return f"{name} ({', '.join(extra)})" if extra else name

    def to_dict(self, with_samples: bool = False) -> dict:
        d = {"model": self.model, "label": self.label, "config": self.config, "tasks": self.tasks,
             "scores": {t: {str(k): v for k, v in by_k.items()} for t, by_k in self.scores.items()},
             "seconds": round(self.seconds, 2), "examples": self.examples,
             "examples_per_s": round(self.examples_per_s, 3)}
        if with_samples:
            d["samples"] = {t: {str(k): v for k, v in by_k.items()} for t, by_k in self.samples.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FewShotResults":
        r = cls(model=d["model"], config=d["config"], tasks=d["tasks"], seconds=d.get("seconds", 0.0),
                examples=d.get("examples", 0))
        r.scores = {t: {int(k): v for k, v in by_k.items()} for t, by_k in d["scores"].items()}
        r.samples = {t: {int(k): v for k, v in by_k.items()} for t, by_k in d.get("samples", {}).items()}
        return r

    def save(self, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
        """results.json, table.md, samples/<model>/<task>.jsonl and accuracy_vs_shots.png."""
        return save_results([self], out_dir, plot=plot)


def slug(s: str) -> str:
    """A file-name-safe form of a model label (letters of any script are kept)."""
    return re.sub(r"[^\w.+-]+", "_", s).strip("_")[:80] or "model"


def save_results(results: Sequence[FewShotResults], out_dir: str | Path, plot: bool = True,
                 title: str | None = None) -> dict:
    """Write results.json, table.md, samples/ and (if `plot`) accuracy_vs_shots.png for these results."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for r in results:
        sdir = out / "samples" / slug(r.label)
        for task, by_k in r.samples.items():
            lines = [json.dumps({"shots": k, **rec}, ensure_ascii=False) for k, recs in by_k.items() for rec in recs]
            atomic_write_text(sdir / f"{task}.jsonl", "\n".join(lines) + "\n")
        paths[f"samples:{r.label}"] = sdir
    paths["results"] = atomic_write_json(out / "results.json", {"results": [r.to_dict() for r in results]})
    paths["table"] = atomic_write_text(out / "table.md", markdown_table(results))
    if plot:
        paths["plot"] = plot_accuracy(results, out / "accuracy_vs_shots.png", title=title)
    return paths


def load_results(path: str | Path, samples: bool = False) -> list[FewShotResults]:
    """FewShotResults from a results.json (or its folder); with `samples`, every record from samples/ too."""
    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    out = [FewShotResults.from_dict(d) for d in read_json(p)["results"]]
    for r in out if samples else []:
        for task in r.scores:
            f = p.parent / "samples" / slug(r.label) / f"{task}.jsonl"
            recs = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
            r.samples[task] = {}
            for rec in recs:
                r.samples[task].setdefault(rec.pop("shots"), []).append(rec)
    return out


def markdown_table(results: Sequence[FewShotResults]) -> str:
    rows = [row for r in results for row in r.table_rows()]
    shots = sorted({int(k.split("-")[0]) for row in rows for k in row if k.endswith("-shot")})
    cols = ["model", "task", "metric", "n", *[f"{k}-shot" for k in shots]]
    return md_table([{c: row.get(c) for c in cols} for row in rows], columns=cols, digits=3)


def plot_accuracy(results: Sequence[FewShotResults], path: str | Path, title: str | None = None) -> Path:
    """Accuracy against the number of demonstrations: one panel per task, one line per model."""
    plt = pyplot()
    tasks = list(dict.fromkeys(t for r in results for t in r.scores))
    n = len(tasks)
    rows = (n + 3) // 4
    cols = (n + rows - 1) // rows
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    all_k = sorted({k for r in results for t in r.scores for k in r.scores[t]})
    for ax, task in zip(axes.flat, tasks):
        metric = ""
        for r in results:
            if task not in r.scores:
                continue
            curve = {k: v for k, v in r.curve(task).items() if v is not None}
            if curve:   # GPT-3 Figure 1.2: dashed = no instruction line ("no prompt")
                ls = "--" if r.config.get("instruction", True) is False else "-"
                mk = "s" if r.config.get("prompt_format", "raw") == "chat" else "o"
                ax.plot(list(curve), list(curve.values()), marker=mk, linestyle=ls, label=r.label)
            metric = r.tasks[task]["metric"]
        chance = _chance(results, task)
        if chance:
            ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(all_k)
        ax.set_xticklabels([str(k) for k in all_k])
        ax.set_xlim(-0.2, max(all_k) * 1.15 + 0.2)
        if metric != "perplexity":
            ax.set_ylim(-0.02, 1.02)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("examples in context (K)", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    _legend(fig, axes)
    fig.suptitle(title or "In-context learning: accuracy by number of demonstrations", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save_figure(fig, path)


def _legend(fig, axes) -> None:
    handles, labels = axes.flat[0].get_legend_handles_labels()
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8,
               bbox_to_anchor=(0.5, -0.02 - 0.03 * ((len(labels) - 1) // 4)))


def _chance(results: Sequence[FewShotResults], task: str) -> float | None:
    for r in results:
        if r.tasks.get(task, {}).get("output_type") == "multiple_choice":
            return r.tasks[task].get("chance")
    return None


def write_results_card(out_dir: str | Path, results: Sequence[FewShotResults], config: dict) -> Path:
    """README.md (a Hub dataset card) for a results folder: what was run, what it scored, where the prompts
    and answers are."""
    n = sum(r.examples for r in results)
    models = ", ".join(dict.fromkeys(r.label for r in results))
    card = dataset_card(
        title=f"Few-shot in-context evaluation of {models} (hfrepro)", license="LGPL and MPL-2.0",
        language=["en", "fr", "ko"], source=["hfrepro few-shot tasks (data_cards/fewshot-tasks.md)"],
        num_examples=n, task_categories=["text-generation"], tags=["evaluation", "few-shot"],
        description=("Accuracy by number of demonstrations in the prompt (zero-, one- and few-shot, GPT-3's "
                     "protocol), measured by `hfrepro fewshot` (recipes/fewshot.py) on lm-evaluation-harness task "
                     "files. `results.json` holds the scores, `samples/<model>/<task>.jsonl` every prompt, "
                     "reference, generation and verdict.\n\n" + markdown_table(results)
                     + "\n![accuracy vs shots](accuracy_vs_shots.png)\n\n" + PLOT_CAPTION),
        how_built=("`hfrepro fewshot --config config.yaml` with this run's config.yaml:\n\n```yaml\n"
                   + yaml.safe_dump(config, sort_keys=True, allow_unicode=True).strip() + "\n```"),
        limits=("Scores on a few dozen test examples per task move by several points with the choice of "
                "demonstrations; the task data's own limits are in its dataset card. Licence: the built-in task "
                "data mixes LGPL (gensim test data), MPL-2.0 (LibreOffice help) and generated numbers."))
    return atomic_write_text(Path(out_dir) / "README.md", str(card).rstrip("\n") + "\n")
