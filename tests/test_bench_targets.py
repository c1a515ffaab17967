"""bench/reproduce.py judges a run against the target its stages have (issue 18: the whole default road within
20 minutes on 2 cores, the six original stages alone within 15)."""
import importlib.util
from pathlib import Path

from hfrepro.reproduce.plan import STAGES

spec = importlib.util.spec_from_file_location("bench_reproduce", Path(__file__).parents[1] / "bench" / "reproduce.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_the_whole_road_has_twenty_minutes_the_six_original_stages_fifteen():
    assert bench.targets("default", [s.name for s in STAGES])["total_seconds"] == 1200
    assert bench.targets("default", sorted(bench.ORIGINAL_SIX))["total_seconds"] == 900
    assert bench.targets("default", ["lm", "rlhf"])["total_seconds"] == 900
    assert bench.targets("default", ["lm", "bert"])["total_seconds"] == 1200   # a chapter of issue 18 in it
    assert bench.targets("default", ["lm"])["peak_gib"] == 6.0
    assert bench.targets("tiny", ["lm", "bert"])["total_seconds"] == 480
    assert bench.targets("full", ["lm"]) == {}


def test_the_original_six_are_stages_of_the_road():
    assert bench.ORIGINAL_SIX <= {s.name for s in STAGES}
