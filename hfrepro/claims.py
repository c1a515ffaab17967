"""Claims, and the protocol that decides them (docs/CLAIMS.md).

A claim is a sentence from the literature ("skip-gram beats CBOW on semantic analogies") that a stage of the
main job decides from numbers its recipes measured. A stage module (`hfrepro/reproduce/<stage>.py`) declares its
`CLAIMS` and `RUNS` (the recipes it runs, at the budget's configs) and a `section(ctx) -> StageResult` that reads
the runs' metrics, decides each claim and writes its part of REPORT.md.

The protocol: every claim names a **statistic** (e.g. skip-gram's accuracy minus CBOW's), a **threshold** the
statistic must clear (e.g. > 0, or >= 0.9 of full fine-tuning's gain) and the **uncertainty** it accounts for, as
an interval: a bootstrap confidence interval over held-out items, or the spread over training seeds. Then

    REPRODUCED      the whole interval clears the threshold on the claimed side,
    NOT REPRODUCED  the whole interval clears it on the other side,
    INCONCLUSIVE    the interval straddles it.

No rounding to pass, no "any difference", no threshold chosen after seeing the result.

    d = decide("w2v-skipgram-semantic", "skip-gram − CBOW semantic accuracy", *paired_bootstrap(cbow, sg),
               threshold=0.0, evidence="...")
    StageResult(markdown, claims={d.claim: d})
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN = "REPRODUCED", "NOT REPRODUCED", "INCONCLUSIVE", "NOT RUN"
LEVEL = 0.95        # every interval in the report is a 95% interval
N_BOOT = 2000       # bootstrap resamples


@dataclass(frozen=True)
class Claim:
    id: str
    text: str


@dataclass
class StageContext:
    dir: Path            # this stage's folder (inside the run folder)
    root: Path           # the run folder holding REPORT.md
    budget: str
    seed: int
    threads: int
    precision: str = "fp32"  # the CPU's precision of the stage's process and its recipes (runtime.set_cpu_precision)

    def rel(self, path: str | Path) -> str:
        """A path relative to REPORT.md, for links and images in the stage's Markdown."""
        return os.path.relpath(Path(path), self.root).replace(os.sep, "/")

    def run_dir(self, name: str) -> Path:
        """The folder of one of the stage's recipe runs."""
        return self.dir / name


@dataclass
class Decision:
    """One claim decided by the protocol."""
    claim: str                   # the claim id
    statistic: str               # what was measured, in words ("LoRA gain / full gain, worst seed")
    estimate: float
    lo: float                    # the interval (LEVEL) around the estimate
    hi: float
    threshold: float
    higher: bool = True          # the claim says: statistic > threshold (False: statistic < threshold)
    uncertainty: str = ""        # what the interval covers ("paired bootstrap over 1,404 questions", "3 seeds")
    evidence: str = ""           # the numbers behind it, for the report
    verdict: str = field(init=False)

    def __post_init__(self):
        self.verdict = verdict_of(self.lo, self.hi, self.threshold, self.higher)

    def summary(self) -> str:
        side = ">" if self.higher else "<"
        interval = f"{_num(self.estimate)} [{_num(self.lo)}, {_num(self.hi)}]"
        text = f"{self.statistic} = {interval} vs {side} {_num(self.threshold)}"
        if self.uncertainty:
            text += f" ({self.uncertainty})"
        return text + (f"; {self.evidence}" if self.evidence else "")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StageResult:
    markdown: str
    # id -> a Decision, or (evidence, held) for a claim decided by a plain rule (held None: could not measure)
    claims: dict[str, Decision | tuple[str, bool | None]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def verdict(held: bool | None) -> str:
    """The verdict of a claim decided by a plain rule (no interval)."""
    return NOT_RUN if held is None else (REPRODUCED if held else NOT_REPRODUCED)


def verdict_of(lo: float, hi: float, threshold: float, higher: bool = True) -> str:
    """REPRODUCED when [lo, hi] clears the threshold on the claimed side, NOT REPRODUCED when it clears it on
    the other side, INCONCLUSIVE when it straddles it (or touches it)."""
    if any(map(_nan, (lo, hi, threshold))):
        return INCONCLUSIVE
    if lo > hi:
        raise ValueError(f"interval [{lo}, {hi}] is reversed")
    if higher:
        return REPRODUCED if lo > threshold else NOT_REPRODUCED if hi < threshold else INCONCLUSIVE
    return REPRODUCED if hi < threshold else NOT_REPRODUCED if lo > threshold else INCONCLUSIVE


def decide(claim: str, statistic: str, estimate: float, lo: float, hi: float, threshold: float, *,
           higher: bool = True, uncertainty: str = "", evidence: str = "") -> Decision:
    return Decision(claim, statistic, float(estimate), float(lo), float(hi), float(threshold), higher,
                    uncertainty, evidence)


# --- statistics --------------------------------------------------------------------------------------------

def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if len(xs) else math.nan


def standard_error(xs: Sequence[float]) -> float:
    """Standard error of the mean; NaN for fewer than 2 values (never silently 0)."""
    n = len(xs)
    if n < 2:
        return math.nan
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n)


def bootstrap(values: Sequence[float], stat: Callable[[Sequence[float]], float] = mean, *, seed: int = 0,
              n_boot: int = N_BOOT, level: float = LEVEL) -> tuple[float, float, float]:
    """(estimate, lo, hi): the percentile bootstrap interval of `stat` over `values` (resampled with a fixed
    seed, so the same numbers give the same interval)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    stats = np.array([stat(v[i]) for i in idx]) if stat is not mean else v[idx].mean(axis=1)
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(stat(v)), float(lo), float(hi)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], stat: Callable = mean, *, seed: int = 0,
                     n_boot: int = N_BOOT, level: float = LEVEL) -> tuple[float, float, float]:
    """(estimate, lo, hi) of stat(b) − stat(a) over paired items (the same item resampled for both)."""
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in size: {x.shape} vs {y.shape}")
    if x.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    if stat is mean:
        diffs = y[idx].mean(axis=1) - x[idx].mean(axis=1)
    else:
        diffs = np.array([stat(y[i]) - stat(x[i]) for i in idx])
    lo, hi = np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(stat(y) - stat(x)), float(lo), float(hi)


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, lo, hi): Student's t interval of the mean over a few independent runs (e.g. training seeds)."""
    from scipy import stats as st

    n = len(values)
    m = mean(values)
    if n < 2:
        return m, math.nan, math.nan
    half = st.t.ppf(1 - (1 - level) / 2, n - 1) * standard_error(values)
    return m, m - half, m + half


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial sign test p-value for `wins` vs `losses` (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    p = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * p)


def _nan(x: float) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _num(x: float) -> str:
    if _nan(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
