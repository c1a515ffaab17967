"""`hfrepro reproduce`: the claims table never states a verdict a run did not measure; re-runs skip."""

import json

import pytest

from hfrepro import reproduce as R
from tests.conftest import run_cli


def test_verdicts_only_from_measurements():
    results = {
        "embeddings": {"status": "ok", "claims": {"w2v-cbow-faster": ["CBOW 600k w/s vs skip-gram 200k", True],
                                                 "w2v-king-queen": ["queen at rank 7", False]}},
        "lm": {"status": "failed", "claims": {}},
    }
    rows = {r["claim"]: r for r in R.verdicts(results)}
    by_id = {c.id: rows[c.text] for c in R.CLAIMS}
    assert by_id["w2v-cbow-faster"]["verdict"] == R.REPRODUCED
    assert by_id["w2v-king-queen"]["verdict"] == R.NOT_REPRODUCED
    assert by_id["w2v-skipgram-semantic"]["verdict"] == R.NOT_RUN  # stage ran but did not measure it
    assert by_id["lm-ppl-ladder"]["verdict"] == R.NOT_RUN and "failed" in by_id["lm-ppl-ladder"]["evidence (this run)"]
    assert by_id["ppo-reward-kl"]["verdict"] == R.NOT_RUN and by_id["ppo-reward-kl"]["evidence (this run)"] == "stage not run"


def test_unknown_stage_and_budget():
    r = run_cli("reproduce", "--stages", "embeddings,nope", "--out", "/tmp/hfrepro-never")
    assert r.returncode == 2 and "unknown stage(s): nope" in r.stderr


@pytest.mark.integration
def test_tiny_budget_end_to_end(tmp_path):
    out = tmp_path / "rep"
    r = run_cli("reproduce", "--budget", "tiny", "--out", out, timeout=1800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    report = (out / "REPORT.md").read_text(encoding="utf-8")
    assert "## Claims" in report
    for c in R.CLAIMS:
        assert c.text in report
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings["stages"]) == set(R.STAGE_NAMES)
    for name, t in timings["stages"].items():
        assert t["status"] == "ok", (name, t)
        res = json.loads((out / name / "result.json").read_text())
        if res["status"] == "ok":
            assert res["markdown"].strip() and res["claims"], name
            for evidence, held in res["claims"].values():
                assert evidence and held in (True, False, None)
    # images linked from the report exist
    import re
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (out / img).is_file(), img
    # a second run skips every finished stage
    r2 = run_cli("reproduce", "--budget", "tiny", "--out", out, timeout=600)
    assert r2.returncode == 0
    done = [s for s, t in timings["stages"].items() if t["status"] == "ok"]
    for s in done:
        assert f"{s}  (elapsed" in r2.stdout and "already done with this config, skipped" in r2.stdout
