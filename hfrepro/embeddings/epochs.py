"""Training gensim models an epoch at a time: a checkpoint after each epoch, resume from the last one, and the
modes side by side, one core each.

A checkpoint is gensim's own full model (`Word2Vec.save`: vectors, output weights, vocabulary, random state)
with the run's counters, in `<model folder>/checkpoint-<epoch>/`:

    word2vec.model (+ .npy side files)   Word2Vec.load() reads it back
    state.json                           epochs done, training seconds, words seen
    trainer_state.json                   {"global_step": epoch}: marks the checkpoint complete (hfrepro.runtime)

gensim's compiled training releases the GIL, so two models trained in two Python threads use two cores; with
`workers=1` each model's numbers do not depend on the other's.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any, Callable

from hfrepro.fsutil import atomic_dir, atomic_write_json, read_json
from hfrepro.runtime import last_checkpoint

MODEL_FILE = "word2vec.model"


def save_checkpoint(model, state: dict, folder: str | Path, keep: int = 1) -> Path:
    """Write `folder/checkpoint-<state["epoch"]>` atomically; keep only the newest `keep` checkpoints."""
    folder = Path(folder)
    epoch = state["epoch"]
    with atomic_dir(folder / f"checkpoint-{epoch}") as tmp:
        model.save(str(tmp / MODEL_FILE))
        atomic_write_json(tmp / "state.json", state)
        atomic_write_json(tmp / "trainer_state.json", {"global_step": epoch})
    done = sorted((p for p in folder.glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()),
                  key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder / f"checkpoint-{epoch}"


def load_checkpoint(folder: str | Path) -> tuple[Any, dict] | None:
    """(model, state) of the newest complete checkpoint in `folder`, or None."""
    from gensim.models import Word2Vec

    last = last_checkpoint(folder)
    if last is None:
        return None
    state = read_json(Path(last) / "state.json")
    state["resumed_from_epoch"] = state["epoch"]
    return Word2Vec.load(str(Path(last) / MODEL_FILE)), state


class TimedTokens:
    """The corpus as gensim iterates it, noting the clock every `every` tokens: `segments` holds one
    [tokens, seconds] pair per stretch, the repeated timings behind a words/s figure with an interval.
    With a progress `bar`, each stretch also moves the bar by its tokens (the rest at the end).

    gensim's producer thread reads the corpus at most a few 10,000-word jobs ahead of training (its job queue
    holds 2 per worker), so a stretch of 100,000+ tokens times training to within a few percent. One plain
    generator with one addition per sentence: gensim's single producer thread runs it for every sentence."""

    def __init__(self, sentences, every: int, bar=None):
        self.sentences, self.every, self.bar = sentences, max(1, every), bar
        self.segments: list[list[float]] = []

    def __iter__(self):
        import time

        every, bar, n, t = self.every, self.bar, 0, time.perf_counter()
        for s in self.sentences:
            yield s
            n += len(s)
            if n >= every:
                now = time.perf_counter()
                self.segments.append([n, now - t])
                if bar is not None:
                    bar.update(n)
                n, t = 0, now
        if bar is not None:
            bar.update(n)


def side_by_side(jobs: dict[str, Callable[[], Any]], parallel: bool = True) -> dict[str, Any]:
    """Run the jobs at the same time, each in its own thread (or one after the other); their results by name.

    The first error is raised again here. Ctrl-C stops at once (the threads are daemons); what a job saved
    (its checkpoints) stays."""
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def one(name: str) -> None:
        try:
            results[name] = jobs[name]()
        except BaseException as e:  # noqa: BLE001 - raised again in the calling thread
            errors.append(e)

    if parallel:
        threads = [threading.Thread(target=one, args=(name,), daemon=True) for name in jobs]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # a short join keeps Ctrl-C responsive
    else:
        for name in jobs:
            one(name)
            if errors:
                break
    if errors:
        raise errors[0]
    return results
