"""Stage 3 integration tests: the real embedded LibreOffice pairs, the smallest real size."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_embedded_pairs_both_directions_and_french():
    from hfrepro.seq2seq.data import load_pairs

    ko = load_pairs("lo-help-en-ko")
    assert ko.source_lang == "en" and ko.target_lang == "ko"
    assert len(ko.splits["train"]) > 10_000 and len(ko.splits["test"]) > 1_000
    assert set(ko.splits["test"].column_names) == {"source", "target"}
    assert any("\uac00" <= c <= "\ud7a3" for c in ko.splits["test"][0]["target"])
    rev = load_pairs("lo-help-en-ko", "ko", "en")
    assert rev.splits["test"][0]["source"] == ko.splits["test"][0]["target"]
    fr = load_pairs("lo-help-en-fr")
    assert fr.target_lang == "fr" and len(fr.splits["train"]) > 20_000


def test_stage_tiny_writes_report_and_its_bleu_equals_sacrebleu_cli(tmp_path):
    from hfrepro.claims import StageContext
    from hfrepro.seq2seq.stage import reproduce

    ctx = StageContext(dir=tmp_path / "seq2seq", root=tmp_path, budget="tiny", seed=0, threads=1)
    ctx.dir.mkdir()
    r = reproduce(ctx)
    evidence, held = r.claims["s2s-attention-long"]
    assert held is None and "tiny budget" in evidence  # 60 updates: measured, not judged
    assert "seq2seq/run/bleu_by_length.png" in r.markdown and "seq2seq/run/attention.png" in r.markdown
    assert "tok:char" in r.markdown
    run = ctx.dir / "run"
    for f in ("bleu_by_length.png", "attention.png", "results.md"):
        assert (run / f).stat().st_size > 0
    for arch in ("rnn", "rnn_attention", "transformer"):
        m = json.loads((run / arch / "metrics.json").read_text())
        assert m["test_sentences"] == 300 and m["parameters"] > 0
        assert sum(b["sentences"] for b in m["by_length"]) == 300
    # The project's BLEU/chrF on a real run equal sacrebleu's own command line on the same files.
    d = run / "transformer"
    m = json.loads((d / "metrics.json").read_text())
    out = subprocess.run([sys.executable, "-m", "sacrebleu", str(d / "ref.txt"), "-i", str(d / "hyp.txt"),
                          "-tok", "char", "-m", "bleu", "chrf", "-b", "-w", "6"], capture_output=True, text=True,
                         check=True)
    cli_bleu, cli_chrf = json.loads(out.stdout)
    assert m["bleu"] == pytest.approx(cli_bleu, abs=5e-6) and m["chrf"] == pytest.approx(cli_chrf, abs=5e-6)


def test_two_cpu_processes_really_train_together(tmp_path):
    """accelerate launch with 2 processes (recipes/accelerate/cpu_2proc.yaml): both archs see world size 2."""
    import os
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    accelerate = Path(sys.executable).with_name("accelerate")
    out = tmp_path / "run"
    cmd = [str(accelerate), "launch", "--config_file", str(repo / "recipes/accelerate/cpu_2proc.yaml"),
           str(repo / "recipes/seq2seq.py"), "--dataset", str(repo / "tests/fixtures/pairs_en_ko.tsv"),
           "--source_lang", "en", "--target_lang", "ko", "--output_dir", str(out), "--vocab_size", "300",
           "--embed_dim", "16", "--hidden_size", "24", "--d_model", "16", "--layers", "1", "--heads", "2",
           "--ffn_dim", "32", "--max_steps", "2", "--batch_size", "4", "--warmup_steps", "1", "--save_steps", "2",
           "--num_beams", "1", "--progress", "false", "--arch", "rnn_attention,transformer", "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(repo)})
    assert r.returncode == 0, r.stderr[-3000:]
    for arch in ("rnn_attention", "transformer"):
        assert json.loads((out / arch / "metrics.json").read_text())["world_size"] == 2
    assert (out / "results.md").is_file()
