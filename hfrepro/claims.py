"""Claims and the main job's stages: what a stage of `hfrepro reproduce` gets and gives back.

A claim is a sentence from the literature ("skip-gram beats CBOW on semantic analogies") that a stage decides
from numbers its recipes measured. A stage module (`hfrepro/reproduce/<stage>.py`) declares its `CLAIMS` and
`RUNS` (the recipes it runs, at the budget's configs) and a `section(ctx) -> StageResult` that reads the runs'
metrics, decides each claim and writes its part of REPORT.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPRODUCED, NOT_REPRODUCED, NOT_RUN = "REPRODUCED", "NOT REPRODUCED", "NOT RUN"


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

    def rel(self, path: str | Path) -> str:
        """A path relative to REPORT.md, for links and images in the stage's Markdown."""
        return os.path.relpath(Path(path), self.root).replace(os.sep, "/")

    def run_dir(self, name: str) -> Path:
        """The folder of one of the stage's recipe runs."""
        return self.dir / name


@dataclass
class StageResult:
    markdown: str
    claims: dict[str, tuple[str, bool | None]] = field(default_factory=dict)  # id -> (evidence, held?)
    metrics: dict[str, Any] = field(default_factory=dict)


def verdict(held: bool | None) -> str:
    return NOT_RUN if held is None else (REPRODUCED if held else NOT_REPRODUCED)
