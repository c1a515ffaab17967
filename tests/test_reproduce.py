"""`hfrepro reproduce`: the claims table never states a verdict a run did not measure; a stage runs its recipes
exactly as a user would; re-runs skip what is done, and a finished recipe run started again changes nothing."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from hfrepro.claims import INCONCLUSIVE, NOT_REPRODUCED, NOT_RUN, REPRODUCED, StageContext
from hfrepro.config import config_path
from hfrepro.errors import UserError
from hfrepro.reproduce import report as R
from hfrepro.reproduce.plan import STAGES, RecipeRun, available
from tests.conftest import PY, REPO, run_cli


def _claim(stage: str, cid: str):
    return next(c for s, c in R.claims() if s == stage and c.id == cid)


def test_verdicts_only_from_measurements():
    results = {
        "embeddings": {"status": "ok", "claims": {
            "w2v-cbow-faster": {"verdict": REPRODUCED, "evidence": "CBOW 600k w/s vs skip-gram 200k"},
            "w2v-king-queen": {"verdict": NOT_REPRODUCED, "evidence": "queen at rank 7"}}},
        "lm": {"status": "failed", "claims": {}},
    }
    rows = {r["claim"]: r for r in R.verdicts(results)}
    assert rows[_claim("embeddings", "w2v-cbow-faster").text]["verdict"] == REPRODUCED
    assert rows[_claim("embeddings", "w2v-king-queen").text]["verdict"] == NOT_REPRODUCED
    semantic = rows[_claim("embeddings", "w2v-skipgram-semantic").text]
    assert semantic["verdict"] == NOT_RUN and semantic["evidence (this run)"] == "not measured by this stage"
    ladder = rows[_claim("lm", "lm-ppl-ladder").text]
    assert ladder["verdict"] == NOT_RUN and "failed" in ladder["evidence (this run)"]
    ppo = rows[_claim("rlhf", "ppo-reward-gain").text]
    assert ppo["verdict"] == NOT_RUN and ppo["evidence (this run)"] == "stage not run"


def test_report_points_to_the_protocol_and_the_glossary(tmp_path):
    text = R.write_report(tmp_path, "tiny", 0, 1, {}).read_text(encoding="utf-8")
    assert "docs/CLAIMS.md" in text and "docs/GLOSSARY.md" in text
    assert (REPO / "docs" / "GLOSSARY.md").is_file() and (REPO / "docs" / "CLAIMS.md").is_file()


def test_stage_titles_are_numbered_by_road_order_in_the_report_and_the_docs(tmp_path):
    results = {name: {"status": "ok", "markdown": f"section of {name}", "claims": {}}
               for name in ("rlhf", "embeddings", "chatgpt")}
    text = R.write_report(tmp_path, "tiny", 0, 1, results).read_text(encoding="utf-8")
    sections = re.findall(r"^## (Stage \d+: .+)$", text, flags=re.M)
    assert sections == [STAGES[0].heading, STAGES[8].heading, STAGES[9].heading]  # road order, not results' order
    assert sections[1].startswith("Stage 9: RLHF") and sections[2].startswith("Stage 10: ")
    for k, stage in enumerate(STAGES, 1):
        assert not re.match(r"(Stage|Chapter)\b", stage.title), stage.title  # the number comes from the order
        first = (REPO / "docs" / f"{stage.name}.md").read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith(f"# Stage {k}: "), (stage.name, first)


def uncaptioned(markdown: str) -> list[str]:
    """The PNGs of a Markdown text not followed by an italic caption paragraph (a run of images shares one)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", markdown) if p.strip()]
    missing = []
    for k, par in enumerate(paragraphs):
        last = par.splitlines()[-1].strip()
        if re.fullmatch(r"!\[[^\]]*\]\([^)]+\.png\)", last):
            nxt = " ".join(paragraphs[k + 1].split()) if k + 1 < len(paragraphs) else ""
            if not re.fullmatch(r"([*_])[^*_].*\1", nxt):
                missing.append(last)
    return missing


def test_uncaptioned_finds_a_plot_without_its_line():
    assert uncaptioned("![a](a.png)\n\n*Look at: a.*\n\n![b](b.png)\n![c](c.png)\n\n_both._\n") == []
    assert uncaptioned("![a](a.png)\n\nPlain text.\n\n![b](b.png)\n") == ["![a](a.png)", "![b](b.png)"]


def test_every_plot_in_the_docs_and_the_example_report_has_a_caption():
    pages = sorted((REPO / "docs").glob("*.md")) + [REPO / "docs" / "example-report" / "REPORT.md"]
    missing = {p.name: m for p in pages if (m := uncaptioned(p.read_text(encoding="utf-8")))}
    assert missing == {}


def _fake_stages(monkeypatch, interrupt_at: str | None = None, sleep: float = 0.0) -> list[tuple]:
    """Stages whose process only writes an ok result.json (after `sleep` seconds); each start records (stage, the
    REPORT.md it found, its threads, its log). `interrupt_at`: the user presses Ctrl-C as that stage starts."""
    import os
    import signal
    import sys

    from hfrepro.reproduce import runner

    seen: list[tuple] = []
    code = ("import pathlib, sys, time; time.sleep(float(sys.argv[3])); p = pathlib.Path(sys.argv[1]); "
            "p.parent.mkdir(parents=True, exist_ok=True); p.write_text(sys.argv[2])")

    def start(stage, out, budget, seed, threads, overwrite, log):
        report = out / "REPORT.md"
        seen.append((stage.name, report.read_text(encoding="utf-8") if report.is_file() else None, threads, log))
        result = {"status": "ok", "markdown": f"section of {stage.name}", "claims": {},
                  "key": runner.stage_key(stage, budget, seed)}
        proc = subprocess.Popen([sys.executable, "-c", code, str(out / stage.name / "result.json"),
                                 json.dumps(result), str(sleep)], start_new_session=True)
        if stage.name == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # the runner's handler forwards it to the running stages
        return proc

    monkeypatch.setattr(runner, "_start_stage", start)
    return seen


def test_an_interrupted_walk_leaves_a_partial_report(tmp_path, monkeypatch):
    from hfrepro.reproduce.runner import reproduce

    seen = _fake_stages(monkeypatch, interrupt_at="seq2seq")
    out = tmp_path / "rep"
    with pytest.raises(KeyboardInterrupt):
        reproduce(["embeddings", "lm", "seq2seq", "fewshot"], "tiny", out, seed=0, threads=1, jobs=1)
    assert [s[0] for s in seen] == ["embeddings", "lm", "seq2seq"]   # nothing starts after Ctrl-C
    assert seen[0][1] is None                                    # nothing before the first stage finished
    after_one = seen[1][1]
    assert "section of embeddings" in after_one and "section of lm" not in after_one
    assert after_one.count("_Not run yet:") == 3                 # lm, seq2seq, fewshot, not the stages never chosen
    assert json.loads((out / "seq2seq" / "result.json").read_text())["status"] == "interrupted"
    report = (out / "REPORT.md").read_text(encoding="utf-8")     # the last one written: after lm (none after Ctrl-C)
    assert "section of lm" in report and report.count("_Not run yet:") == 2   # seq2seq, fewshot
    seq2seq = next(r for r in R.verdicts({"seq2seq": R.NOT_YET}) if r["claim"] == _claim("seq2seq",
                                                                                             "s2s-attention-long").text)
    assert seq2seq["evidence (this run)"] == "stage not run yet" and seq2seq["verdict"] == NOT_RUN
    assert "stage not run yet" in report and not (out / "timings.json").exists()


def test_a_finished_walk_leaves_no_stage_marked_not_run_yet(tmp_path, monkeypatch):
    from hfrepro.reproduce.runner import reproduce

    seen = _fake_stages(monkeypatch)
    out = tmp_path / "rep"
    reproduce(["embeddings", "lm"], "tiny", out, seed=0, threads=1, jobs=1)
    assert "_Not run yet:" in seen[1][1]
    assert [(s[2], s[3]) for s in seen] == [(1, None), (1, None)]   # one at a time: all threads, the terminal
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "section of embeddings" in report and "section of lm" in report and "Not run yet" not in report
    assert set(json.loads((out / "timings.json").read_text())["stages"]) == {"embeddings", "lm"}


def test_one_at_a_time_follows_road_order_except_where_a_stage_reads_a_later_one(tmp_path, monkeypatch):
    from hfrepro.reproduce.runner import reproduce

    seen = _fake_stages(monkeypatch)
    reproduce([s.name for s in available()], "tiny", tmp_path / "rep", seed=0, threads=2, jobs=1)
    order = [s[0] for s in seen]
    road = [s.name for s in available()]
    assert order.index("transformer") > order.index("bert")          # it shows the bert stage's model
    assert [n for n in order if n != "transformer"] == [n for n in road if n != "transformer"]


def test_side_by_side_stages_overlap_wait_for_what_they_read_and_split_the_threads(tmp_path, monkeypatch):
    from hfrepro.reproduce.runner import reproduce

    seen = _fake_stages(monkeypatch, sleep=0.3)
    out = tmp_path / "rep"
    reproduce([s.name for s in available()], "default", out, seed=0, threads=4, jobs=2)
    assert {s[2] for s in seen} == {2}                                  # 4 threads shared by 2 stages
    assert all(s[3] == out / s[0] / "stage.log" for s in seen)         # each stage's output in its own file
    t = json.loads((out / "timings.json").read_text())
    spans = {n: (v["started_s"], v["ended_s"]) for n, v in t["stages"].items()}
    assert t["jobs"] == 2 and t["threads"] == 2 and set(spans) == {s.name for s in available()}
    for s in available():
        for d in s.after:
            assert spans[s.name][0] >= spans[d][1], (s.name, d)        # started after what it reads had ended
    overlap = lambda a, b: spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]  # noqa: E731
    names = list(spans)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if overlap(a, b)]
    assert pairs, "two stages ran at once"
    gib = {s.name: s.expected_gib["default"] for s in available()}
    assert all(gib[a] + gib[b] <= 5.5 for a, b in pairs), pairs          # never two big ones together
    assert t["total_seconds"] < sum(b - a for a, b in spans.values())  # side by side is shorter than the sum


def test_the_next_stage_respects_places_readers_and_memory():
    from hfrepro.reproduce.runner import next_stage, priorities

    st = {s.name: s for s in available()}
    chosen = set(st)
    prio = priorities(list(st.values()), "default")
    assert prio["embeddings"] == sum(st[n].expected_s["default"] for n in ("embeddings", "bert", "transformer"))

    def pick(todo, running, done=(), jobs=2, cap=5.5):
        s = next_stage([st[n] for n in todo], [st[n] for n in running], set(done), chosen, jobs, "default", cap,
                       prio)
        return s and s.name

    assert prio["lm"] == st["lm"].expected_s["default"] + st["transformer"].expected_s["default"]
    longest = max(("lm", "rlhf", "chatgpt"), key=prio.get)
    assert pick(["lm", "rlhf", "chatgpt"], []) == longest                  # the longest critical path first
    assert pick(["chatgpt", "rlhf", "lm"], []) == longest                  # whatever order they are listed in
    assert pick(["lm", "rlhf", "chatgpt"], [], jobs=1) == "lm"             # one at a time: road order
    assert pick(["chatgpt", "lm"], ["rlhf"]) == "lm"                       # rlhf + chatgpt would pass the cap
    assert pick(["chatgpt"], ["rlhf"]) is None                             # ... so chatgpt waits
    assert pick(["finetune"], ["rlhf"]) == "finetune"                     # rlhf's evaluations release memory first
    assert pick(["chatgpt"], ["rlhf"], cap=7.0) == "chatgpt"
    assert pick(["lm"], ["rlhf", "embeddings"]) is None                    # no free place
    assert pick(["bert", "transformer"], [], done=["lm", "seq2seq"]) is None   # bert reads embeddings' vectors
    assert pick(["bert", "transformer"], [], done=["lm", "seq2seq", "embeddings"]) == "bert"
    assert pick(["transformer"], ["bert"], done=["lm", "seq2seq", "embeddings"]) is None  # reads bert's model
    assert pick(["transformer"], [], done=["lm", "seq2seq", "embeddings", "bert"]) == "transformer"


def test_the_walk_on_paper_adds_the_expected_times_as_the_runner_would(monkeypatch):
    """`simulate`: the seconds a walk takes when every stage takes its expected time (hand-computed here from
    the plan's fp32 numbers), and the planned order never loses to the critical-path order, and beats it where
    memory forces the big stages one after another (bf16)."""
    from hfrepro.reproduce.runner import planned_priorities, priorities, simulate

    st = {s.name: s for s in available()}
    sec = {n: s.expected_s["default"] for n, s in st.items()}
    monkeypatch.setenv("HFREPRO_PRECISION", "fp32")

    def walk(names, jobs=2):
        stages = [st[n] for n in names]
        return simulate(names, stages, stages, "default", jobs, 5.5)

    assert walk(["embeddings", "bert"]) == sec["embeddings"] + sec["bert"]   # bert reads embeddings' vectors
    assert walk(["lm", "fewshot"]) == max(sec["lm"], sec["fewshot"])         # side by side
    assert walk(["lm", "fewshot"], jobs=1) == sec["lm"] + sec["fewshot"]     # one at a time
    assert walk(["rlhf", "chatgpt"]) == sec["rlhf"] + sec["chatgpt"]         # 2.45 + 3.11 GiB > 5.5: in turn
    for precision in ("fp32", "bf16"):
        monkeypatch.setenv("HFREPRO_PRECISION", precision)
        every = list(st.values())
        cp, planned = priorities(every, "default"), planned_priorities(every, every, "default", 2, 5.5)
        by = lambda prio: sorted(prio, key=lambda n: -prio[n])  # noqa: E731
        assert sorted(planned) == sorted(st)
        t_cp, t_planned = (simulate(by(p), every, every, "default", 2, 5.5) for p in (cp, planned))
        assert t_planned <= t_cp, precision
        assert t_planned >= sum(s.seconds("default", precision) for s in every) / 2   # two places at most
        if precision == "bf16":   # rlhf, finetune and chatgpt cannot run beside each other
            assert t_planned < t_cp
    assert planned_priorities(every, every, "default", 2, 5.5) == planned      # seeded: the same plan every time


def test_at_bf16_the_stages_that_take_it_expect_their_own_peaks_and_times(monkeypatch):
    """Mixed precision raises a stage's peak (bf16 casts of the weights beside the fp32 ones): at bf16, finetune
    (3.25 GiB) no longer fits beside rlhf (2.45) under the cap; the stages that stay fp32 (lm and rlhf among them,
    whose verdicts bf16 moved) keep their fp32 numbers."""
    from hfrepro.reproduce.runner import next_stage, priorities

    st = {s.name: s for s in available()}
    assert st["finetune"].peak_gib("default", "bf16") > st["finetune"].peak_gib("default") == 3.00
    assert st["finetune"].seconds("default", "bf16") < st["finetune"].seconds("default")
    assert st["fewshot"].peak_gib("default", "bf16") == st["fewshot"].peak_gib("default")   # stays fp32
    assert [s.name for s in available() if s.cpu_bf16] == ["bert", "finetune"]
    for fp32_only in ("lm", "rlhf"):
        s = st[fp32_only]
        assert s.precision("bf16") == "fp32" and s.seconds("default", "bf16") == s.seconds("default")
    for precision, fits in (("fp32", True), ("bf16", False)):
        monkeypatch.setenv("HFREPRO_PRECISION", precision)
        prio = priorities(list(st.values()), "default")
        s = next_stage([st["finetune"]], [st["rlhf"]], set(), set(st), 2, "default", 5.5, prio)
        assert (s is not None) == fits, precision
        assert next_stage([st["finetune"]], [st["chatgpt"]], set(), set(st), 2, "default", 5.5, prio) is None


def test_two_stages_side_by_side_by_default_on_a_cpu_budget_with_two_cores(tmp_path, monkeypatch):
    from hfrepro.reproduce.runner import default_jobs, reproduce

    assert [default_jobs(b, cpus=2) for b in ("tiny", "default", "full")] == [2, 2, 1]
    assert default_jobs("default", cpus=1) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    seen = _fake_stages(monkeypatch)
    reproduce(["embeddings", "lm"], "default", tmp_path / "rep", seed=0, threads=2)
    assert [(s[2], s[3].name) for s in seen] == [(1, "stage.log"), (1, "stage.log")]


@pytest.mark.parametrize("args,message", [(("--jobs", "0"), "at least one stage must run"),
                                          (("--jobs", "-1"), "at least one stage must run"),
                                          (("--memory_gib", "0"), "must be positive"),
                                          (("--memory_gib", "nan"), "must be positive")])
def test_no_stage_at_a_time_or_no_memory_is_refused(args, message):
    r = run_cli("reproduce", *args, "--out", "/tmp/hfrepro-never")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not Path("/tmp/hfrepro-never").exists()                           # refused before anything is written


def test_the_side_by_side_peak_adds_up_overlapping_stages():
    from hfrepro.reproduce.runner import concurrent_peak

    assert concurrent_peak({}) == 0
    assert concurrent_peak({"a": (0, 10, 3), "b": (10, 20, 2)}) == 3          # one after the other
    assert concurrent_peak({"a": (0, 10, 3), "b": (5, 20, 2), "c": (12, 15, 4)}) == 6


def test_every_stage_declares_claims_and_runs_that_exist():
    ids = [c.id for _, c in R.claims()]
    assert len(ids) == len(set(ids)), "claim ids are unique"
    for stage in available():
        mod = stage.load()
        assert mod.CLAIMS and callable(mod.section), stage.name
        for r in mod.RUNS:
            for budget in ("tiny", "default", "full"):
                assert config_path(r.config or r.recipe, budget).is_file(), (stage.name, r, budget)


def test_a_recipe_run_is_the_users_command_line(tmp_path):
    ctx = StageContext(dir=tmp_path / "lm", root=tmp_path, budget="tiny", seed=3, threads=2)
    r = RecipeRun("smoke", name="s", args=("--tokenizer", "{stage}/clm", "--other", "{root}/lm/x"))
    argv = r.argv(ctx)
    assert argv[:2] == ["--config", str(config_path("smoke", "tiny"))]
    assert argv[2:] == ["--output_dir", str(tmp_path / "lm" / "s"), "--seed", "3", "--threads", "2",
                        "--tokenizer", str(tmp_path / "lm" / "clm"), "--other", str(tmp_path / "lm" / "x")]
    assert [p.name for p in r.sources("tiny")] == ["smoke.py", "tiny.yaml"]
    bf16 = StageContext(dir=tmp_path / "lm", root=tmp_path, budget="tiny", seed=3, threads=2, precision="bf16")
    assert r.argv(bf16)[8:10] == ["--precision", "bf16"]  # what the user types for it; fp32 is the default


def test_hashing_a_runs_sources_imports_no_recipe():
    """The runner hashes each run's recipe file to key the stage; it must not import it (a recipe imports
    transformers and trl: seconds of CPU taken from the stages running beside the runner)."""
    import subprocess
    import sys
    code = ("import sys; from hfrepro.reproduce.plan import RecipeRun; "
            "p = RecipeRun('sft').sources('default')[0]; "
            "print(p.name, 'hfrepro.recipes.sft' in sys.modules, 'trl' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["sft.py", "False", "False"]


@pytest.mark.parametrize("stages,message", [("embeddings,nope", "unknown stage(s): nope"),
                                            ("", "unknown stage(s): (none given)")])
def test_unknown_or_no_stage(stages, message):
    r = run_cli("reproduce", "--stages", stages, "--out", "/tmp/hfrepro-never")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.integration
def test_tiny_budget_end_to_end(tmp_path):
    out = tmp_path / "rep"
    r = run_cli("reproduce", "--budget", "tiny", "--out", out, timeout=1800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "## Claims" in report
    for _, c in R.claims():
        assert c.text in report
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings["stages"]) == {s.name for s in available()}
    for name, t in timings["stages"].items():
        assert t["status"] == "ok", (name, t)
        res = json.loads((out / name / "result.json").read_text())
        assert res["markdown"].strip() and res["claims"], name
        for rec in res["claims"].values():
            assert rec["evidence"] and rec["verdict"] in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN)
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):  # images linked from the report exist
        assert (out / img).is_file(), img
    assert uncaptioned(report) == [], "every plot has its caption line"
    # a second run skips every finished stage
    r2 = run_cli("reproduce", "--budget", "tiny", "--out", out, timeout=600)
    assert r2.returncode == 0
    for s in timings["stages"]:
        assert f"{s}  (elapsed" in r2.stdout and "already done with this config, skipped" in r2.stdout
    # every finished recipe run, started again with the user's own command line, changes nothing on disk
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # (at the precision the walk ran each stage at: the default, auto, is bf16 for some stages on a CPU with AMX)
    rerun = ("import json, sys; from pathlib import Path; from hfrepro.claims import StageContext; "
             "from hfrepro.reproduce.plan import available, recipe_cli\n"
             "out = Path(sys.argv[1]); precision = json.loads((out / 'timings.json').read_text())['precision']\n"
             "for s in available():\n"
             "    ctx = StageContext(dir=out / s.name, root=out, budget='tiny', seed=0, threads=1,\n"
             "                       precision=precision[s.name])\n"
             "    for r in s.load().RUNS:\n"
             "        recipe_cli(r.recipe)(r.argv(ctx))\n")
    r3 = subprocess.run([PY, "-c", rerun, str(out)], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert r3.returncode == 0, r3.stderr[-4000:]
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert sorted(map(str, after)) == sorted(map(str, before)), "a re-run added or removed files"
    def same(p):  # status.json records when the run was last checked, by design; nothing else may change
        if p.name != "status.json":
            return before[p] == after[p]
        a, b = json.loads(before[p]), json.loads(after[p])
        return {**a, "last_checked": None} == {**b, "last_checked": None}

    changed = [str(p.relative_to(out)) for p in before if not same(p)]
    assert not changed, changed


def test_a_stage_process_holds_every_thread_pool_to_its_share(tmp_path, monkeypatch):
    import os

    from hfrepro import runtime
    from hfrepro.reproduce import runner

    calls = []
    monkeypatch.setattr(runner.subprocess, "Popen", lambda cmd, **kw: calls.append((cmd, kw)))
    monkeypatch.setenv("OMP_NUM_THREADS", "8")                    # the user's, for the whole machine
    stage = next(s for s in available() if s.name == "lm")
    runner._start_stage(stage, tmp_path, "tiny", 0, 1, False, tmp_path / "lm" / "stage.log")
    runner._start_stage(stage, tmp_path, "tiny", 0, 2, False, None)
    (cmd1, kw1), (cmd2, kw2) = calls
    assert cmd1[cmd1.index("--threads") + 1] == "1"
    assert all(kw1["env"][v] == "1" for v in runtime.THREAD_VARS)    # numpy, tokenizers, OpenMP: one each
    assert all(kw2["env"][v] == "2" for v in runtime.THREAD_VARS)
    assert kw1["env"]["PATH"] == os.environ["PATH"]                 # the rest of the environment passed on


def test_a_bf16_walk_reaches_its_stages_keys_and_report_and_is_not_reused_at_fp32(tmp_path, monkeypatch):
    """--precision bf16 reaches the stages that gain from it (finetune here) through their process's environment
    and their keys; a stage that stays fp32 (embeddings) keeps its fp32 key, so the two walks share it."""
    import os

    from hfrepro.reproduce import runner

    seen = _fake_stages(monkeypatch)
    fake, precisions = runner._start_stage, []

    def start(*args):
        precisions.append(os.environ.get("HFREPRO_PRECISION"))  # what the stage process inherits
        return fake(*args)

    monkeypatch.setattr(runner, "_start_stage", start)
    monkeypatch.delenv("HFREPRO_PRECISION", raising=False)
    out, two = tmp_path / "rep", ["embeddings", "finetune"]
    runner.reproduce(two, "tiny", out, seed=0, threads=1, jobs=1, precision="bf16")
    assert precisions == ["bf16", "bf16"] and "HFREPRO_PRECISION" not in os.environ   # set for the walk only
    keys = {s: json.loads((out / s / "result.json").read_text())["key"] for s in two}
    assert keys["finetune"]["precision"] == "bf16" and "precision" not in keys["embeddings"]
    assert "bf16 mixed precision on the CPU in bert, finetune (the others fp32)" in (out / "REPORT.md").read_text()
    assert json.loads((out / "timings.json").read_text())["precision"] == {"embeddings": "fp32", "finetune": "bf16"}
    runner.reproduce(two, "tiny", out, seed=0, threads=1, jobs=1, precision="bf16")
    assert len(seen) == 2                                                          # finished at bf16: skipped
    runner.reproduce(two, "tiny", out, seed=0, threads=1, jobs=1, precision="fp32")
    assert [s[0] for s in seen] == ["embeddings", "finetune", "finetune"] and precisions[-1] == "fp32"
    assert "precision" not in json.loads((out / "finetune" / "result.json").read_text())["key"]


def test_auto_precision_is_bf16_on_a_cpu_with_amx_and_fp32_elsewhere(tmp_path, monkeypatch):
    """The main job's default: bf16 only where the CPU has AMX and no accelerator runs it (AVX512-BF16 alone
    multiplies bf16 in hardware too, but there two verdicts changed with the seed in bf16: docs/CLAIMS.md)."""
    from hfrepro import runtime
    from hfrepro.reproduce import runner

    for hw, accelerator, want in (("AMX", False, "bf16"), ("AVX512-BF16", False, "fp32"), ("", False, "fp32"),
                                  ("AMX", True, "fp32")):
        monkeypatch.setattr(runtime, "cpu_bf16", lambda *_, hw=hw: hw)
        monkeypatch.setattr(runtime, "has_accelerator", lambda accelerator=accelerator: accelerator)
        assert runtime.resolve_precision("auto") == want
        assert runtime.resolve_precision("fp32") == "fp32" and runtime.resolve_precision("bf16") == "bf16"
    seen = _fake_stages(monkeypatch)
    runner.reproduce(["finetune"], "tiny", tmp_path / "rep", seed=0, threads=1, jobs=1)   # the default: auto
    assert seen and json.loads((tmp_path / "rep" / "timings.json").read_text())["precision"] == {"finetune": "fp32"}
    with pytest.raises(UserError, match="fp8"):
        runtime.resolve_precision("fp8")


def test_an_unknown_precision_is_refused_before_anything_is_written():
    r = run_cli("reproduce", "--precision", "fp8", "--out", "/tmp/hfrepro-never")
    assert r.returncode == 2 and "fp8" in r.stderr and "Traceback" not in r.stderr
    assert not Path("/tmp/hfrepro-never").exists()


def test_the_stage_key_covers_the_stages_it_reads(tmp_path, monkeypatch):
    """The transformer stage draws BERT's attention maps from the bert stage's folder: a change in what the bert
    stage depends on (here its package, hfrepro/bert/) makes the main job re-run the transformer stage too, not
    only bert (2026-12-06: with 1,500 BERT steps the walk re-ran bert and kept the transformer section of the
    1,000-step BERT). A stage that does not read bert's folder keeps its key."""
    from hfrepro.reproduce import runner
    from hfrepro.reproduce.plan import STAGES

    by_name = {s.name: s for s in STAGES}
    assert "bert" in by_name["transformer"].after and "bert" not in by_name["rl_basics"].after
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "model.py").write_text("STEPS = 1000\n")
    monkeypatch.setattr(runner, "PACKAGE_DIR", tmp_path)
    before = {n: runner.stage_key(by_name[n], "tiny", 0) for n in ("bert", "transformer", "rl_basics")}
    (tmp_path / "bert" / "model.py").write_text("STEPS = 1500\n")
    after = {n: runner.stage_key(by_name[n], "tiny", 0) for n in before}
    assert after["bert"] != before["bert"] and after["transformer"] != before["transformer"]
    assert after["rl_basics"] == before["rl_basics"]


def test_the_report_names_the_cpu_and_its_bf16_hardware(tmp_path, monkeypatch):
    """fp32 numbers depend on the CPU and `--precision auto` on its bf16 hardware: the report's header says both."""
    from hfrepro import runtime

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu avx512f avx512_bf16\n")
    monkeypatch.setattr(runtime, "CPUINFO", info)
    assert runtime.cpu_name() == "AMD EPYC 9B14, AVX512-BF16, no AMX" and not runtime.cpu_has_amx()
    assert runtime.cpu_bf16() == "AVX512-BF16"
    text = R.write_report(tmp_path, "tiny", 0, 1, {}).read_text(encoding="utf-8")
    assert "(AMD EPYC 9B14, AVX512-BF16, no AMX)" in text
    info.write_text("model name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert runtime.cpu_name() == "Intel(R) Xeon(R) Platinum 8481C, AMX" and runtime.cpu_bf16() == "AMX"
    info.write_text("model name\t: Intel(R) Core(TM) i7-8700\nflags\t\t: fpu avx2 avx512f\n")
    assert runtime.cpu_name() == "Intel(R) Core(TM) i7-8700, no bf16 hardware" and runtime.cpu_bf16() == ""
    monkeypatch.setattr(runtime, "CPUINFO", tmp_path / "absent")
    assert not runtime.cpu_has_amx() and not runtime.cpu_bf16() and "AMX" not in runtime.cpu_name()
