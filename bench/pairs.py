"""Speed as a ratio of two commands run alternately (issue 19): one way to run them and one way to read them.

`alternate` runs A and B `repeats` times, alternating which goes first (A, B, B, A, ...), so a slow spell of a
shared machine falls on both. `ratios` reads the runs two ways: the fastest B over the fastest A (the runs least
disturbed by other processes), and the median of the within-pair ratios B_i / A_i. `run_recipe` runs one side
when a side is a recipe command.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable


def run_recipe(cmd: list[str], folder: Path, *args: str, env: dict[str, str] | None = None) -> Path:
    """`hfrepro <cmd> --output_dir <folder> --threads 1 <args>` in its own process, one thread, quiet (`env`: its
    environment, default this one's). Returns the metrics.json of the model's own folder (the deepest one)."""
    env = {**(os.environ if env is None else env), "OMP_NUM_THREADS": "1", "HFREPRO_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "hfrepro", *cmd, "--output_dir", str(folder), "--threads", "1", *args],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return sorted(folder.rglob("metrics.json"), key=lambda p: len(p.parts))[-1]


def alternate(repeats: int, a: Callable[[int], Any], b: Callable[[int], Any]) -> tuple[list, list]:
    """([a(0), a(1), ...], [b(0), b(1), ...]), the two called alternately, A first in even repeats."""
    out_a, out_b = [], []
    for r in range(repeats):
        for side in ((a, b) if r % 2 == 0 else (b, a)):
            (out_a if side is a else out_b).append(side(r))
    return out_a, out_b


def ratios(a: list[float], b: list[float]) -> tuple[float, float]:
    """(fastest b / fastest a, median over pairs of b_i / a_i) for times of alternated runs."""
    return min(b) / min(a), statistics.median(y / x for x, y in zip(a, b))
