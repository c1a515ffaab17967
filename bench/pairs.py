"""Speed as a ratio of two commands run alternately (issue 19): one way to run them and one way to read them.

`alternate` runs A and B `repeats` times, alternating which goes first (A, B, B, A, ...), so a slow spell of a
shared machine falls on both. `ratios` reads the runs two ways: the fastest B over the fastest A (the runs least
disturbed by other processes), and the median of the within-pair ratios B_i / A_i.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable


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
