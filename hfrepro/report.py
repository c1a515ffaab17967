"""Results as people read them: Markdown tables and PNG plots, written atomically."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 10 ** -digits):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def md_table(rows: Iterable[dict[str, Any]] | Iterable[Sequence[Any]], columns: Sequence[str] | None = None,
             digits: int = 3) -> str:
    """A GitHub Markdown table from dicts (columns = keys of the first row unless given) or sequences."""
    rows = list(rows)
    if not rows:
        return "_(no rows)_\n"
    if isinstance(rows[0], dict):
        columns = list(columns or rows[0].keys())
        body = [[r.get(c) for c in columns] for r in rows]
    else:
        if columns is None:
            raise ValueError("columns are required for sequence rows")
        body = [list(r) for r in rows]
    head = "| " + " | ".join(columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    lines = ["| " + " | ".join(fmt(v, digits) for v in r) + " |" for r in body]
    return "\n".join([head, sep, *lines]) + "\n"


def figure(path: str | Path, alt: str, caption: str) -> list[str]:
    """A figure in Markdown as the reports show one: the image, then its one-line italic caption saying what to
    look at (lines to add to a list joined with newlines)."""
    return [f"![{alt}]({path})", "", f"*{caption}*", ""]


def pyplot():
    """matplotlib.pyplot with a non-interactive backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a figure as PNG atomically and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    pyplot().close(fig)
    return path
