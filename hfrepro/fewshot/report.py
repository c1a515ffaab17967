"""Saving few-shot results: JSON, every prompt and answer (JSONL), a Markdown table, accuracy-vs-shots plots.

A results folder:

    results.json                 scores by model, task and number of shots, plus the run's config
    table.md                     the same scores as a Markdown table (one row per model and task)
    accuracy_vs_shots.png        one panel per task, one line per model (GPT-3 Figure 1.2 style)
    samples/<model>/<task>.jsonl one line per (shots, test example): prompt, target, generation, prediction, ...
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", s).strip("_")[:80] or "model"


def save_results(results: Sequence, out_dir: str | Path, plot: bool = True, title: str | None = None) -> dict:
    """Write results.json, table.md, samples/ and (if `plot`) accuracy_vs_shots.png for these results."""
    from hfrepro.report import md_table

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


def load_results(path: str | Path) -> list:
    """FewShotResults objects from a results.json (or its folder); samples are not re-read."""
    from hfrepro.fewshot.evaluator import FewShotResults

    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    return [FewShotResults.from_dict(d) for d in read_json(p)["results"]]


def markdown_table(results: Sequence) -> str:
    from hfrepro.report import md_table

    rows = [row for r in results for row in r.table_rows()]
    shots = sorted({int(k.split("-")[0]) for row in rows for k in row if k.endswith("-shot")})
    cols = ["model", "task", "metric", "n", *[f"{k}-shot" for k in shots]]
    return md_table([{c: row.get(c) for c in cols} for row in rows], columns=cols, digits=3)


def plot_accuracy(results: Sequence, path: str | Path, title: str | None = None) -> Path:
    """Accuracy against the number of demonstrations: one panel per task, one line per model."""
    from hfrepro.report import pyplot, save_figure

    plt = pyplot()
    tasks = list(dict.fromkeys(t for r in results for t in r.scores))
    n = len(tasks)
    rows = (n + 3) // 4
    cols = (n + rows - 1) // rows
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    all_k = sorted({k for r in results for t in r.scores for k in r.scores[t]})
    for ax, task in zip(axes.flat, tasks):
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
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("examples in context (K)", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8,
               bbox_to_anchor=(0.5, -0.02 - 0.03 * ((len(labels) - 1) // 4)))
    fig.suptitle(title or "In-context learning: accuracy by number of demonstrations", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save_figure(fig, path)


def _chance(results: Sequence, task: str) -> float | None:
    for r in results:
        if r.tasks.get(task, {}).get("scoring") == "multiple_choice":
            for by_k in r.samples.get(task, {}).values():
                if by_k:
                    return sum(1 / len(x["choices"]) for x in by_k) / len(by_k)
            return r.tasks[task].get("chance")
    return None


def write_results_card(out_dir: str | Path, results: Sequence, config: dict) -> Path:
    """README.md (a Hub dataset card) for a results folder pushed as a dataset repo: what was run, what it
    scored, where the prompts and answers are."""
    import yaml

    from hfrepro.config import resolved
    from hfrepro.fsutil import atomic_write_text
    from hfrepro.cards import dataset_card

    class _C:
        def to_dict(self):
            return dict(config)

    n = sum(r.examples for r in results)
    models = ", ".join(dict.fromkeys(r.label for r in results))
    card = dataset_card(
        title=f"Few-shot in-context evaluation of {models} (hfrepro)", license="LGPL and MPL-2.0",
        language=["en", "fr", "ko"], source=["hfrepro few-shot tasks (data_cards/fewshot-tasks.md)"],
        num_examples=n, task_categories=["text-generation"], tags=["evaluation", "few-shot"],
        description=("Accuracy by number of demonstrations in the prompt (zero-, one- and few-shot, GPT-3's "
                     "protocol), measured by `hfrepro fewshot`. `results.json` holds the scores, "
                     "`samples/<model>/<task>.jsonl` every prompt, reference, generation and verdict.\n\n"
                     + markdown_table(results) + "\n![accuracy vs shots](accuracy_vs_shots.png)"),
        how_built=("```yaml\n" + yaml.safe_dump(resolved(_C()), sort_keys=True, allow_unicode=True).strip()
                   + "\n```"),
        limits=("Scores on a few dozen test examples per task move by several points with the choice of "
                "demonstrations; the task data's own limits are in its dataset card. Licence: the task data "
                "mixes LGPL (gensim test data), MPL-2.0 (LibreOffice help) and generated numbers."))
    return atomic_write_text(Path(out_dir) / "README.md", str(card).rstrip("\n") + "\n")
