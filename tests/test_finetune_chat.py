"""hfrepro chat: history kept across turns, /reset, /system, streamed tokens."""

# pytest fixtures come from finetune_helpers (imported below), and tests name them as arguments:
# ruff: noqa: F811

import io

import pytest
from finetune_helpers import tiny_model_dir  # noqa: F401  (fixture)

from hfrepro.errors import UserError
from hfrepro.finetune.chat import ChatSession, repl


@pytest.fixture
def session(tiny_model_dir):
    return ChatSession.load(str(tiny_model_dir), max_new_tokens=5, temperature=0.0, out=io.StringIO())


def test_history_is_kept_and_sent(session):
    seen = []
    orig = session.tok.apply_chat_template

    def spy(msgs, **kw):
        seen.append([m["content"] for m in msgs])
        return orig(msgs, **kw)

    session.tok.apply_chat_template = spy
    pieces = []
    a1 = session.send("The cat sat?", on_token=pieces.append)
    assert "".join(pieces).strip() == a1          # the reply is exactly what was streamed
    session.send("And the dog?")
    assert seen[-1] == ["The cat sat?", a1, "And the dog?"]   # turn 2 sees turn 1
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]


def test_reset_and_system(session):
    session.send("hello")
    assert session.handle("/reset").startswith("(conversation reset")
    assert session.messages == []
    msg = session.handle("/system You are a dictionary.")
    assert "You are a dictionary." in msg
    assert session.messages == [{"role": "system", "content": "You are a dictionary."}]
    session.send("cat?")
    session.handle("/reset")
    assert session.messages == [{"role": "system", "content": "You are a dictionary."}]  # system kept
    assert "unknown command" in session.handle("/frobnicate")
    with pytest.raises(EOFError):
        session.handle("/exit")


def test_scripted_repl(session):
    repl(session, messages=["The cat?", "/history", "/reset", "/history"])
    out = session.out.getvalue()
    assert "user> The cat?" in out and "assistant> " in out and "user: The cat?" in out and "(empty)" in out


def test_context_overflow_drops_oldest(session):
    session.context = 60
    for _ in range(6):
        session.send("The queen spoke to the king about the war and the land.")
    assert session.messages[0]["role"] == "user" and len(session.messages) < 12


def test_unknown_run(tmp_path):
    with pytest.raises(UserError):
        ChatSession.load("ft-does-not-exist", runs_dir=tmp_path)


def test_complete_continues_the_prompt_as_written(session):
    from hfrepro.finetune.chat import complete

    model, tok = session.model, session.tok
    a = complete(model, tok, "The cat sat on the", max_tokens=6)
    b = complete(model, tok, "The cat sat on the", max_tokens=6)
    assert a == b and len(a) == 1 and a[0]["finish_reason"] in ("stop", "length")   # greedy: the same text
    ids = tok("The cat sat on the", return_tensors="pt")["input_ids"]
    import torch
    with torch.no_grad():
        ref = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    assert a[0]["text"] == tok.decode(ref[0, ids.shape[1]:], skip_special_tokens=True)   # no chat template
    text = a[0]["text"]
    if text.strip():
        stop = text.strip()[:2]
        cut = complete(model, tok, "The cat sat on the", max_tokens=6, stop=[stop])[0]
        assert cut["text"] == text[:text.index(stop)] and cut["finish_reason"] == "stop"
    many = complete(model, tok, "The cat", max_tokens=4, temperature=1.0, n=3, seed=1)
    assert len(many) == 3 and many == complete(model, tok, "The cat", max_tokens=4, temperature=1.0, n=3, seed=1)
    with pytest.raises(UserError):
        complete(model, tok, "", max_tokens=4)
    with pytest.raises(UserError):
        complete(model, tok, "x", max_tokens=0)


def test_complete_command_with_a_run_id(tiny_model_dir, tmp_path):
    from conftest import run_cli

    from hfrepro.finetune import jobs

    run = tmp_path / "runs" / "ft-done"
    run.mkdir(parents=True)
    for f in tiny_model_dir.iterdir():
        (run / f.name).write_bytes(f.read_bytes())
    jobs.write_job(run, id="ft-done", status="succeeded", created=0)
    r = run_cli("complete", "--model", "ft-done", "-p", "The cat", "--max_tokens", "3", "--runs_dir", tmp_path / "runs")
    assert r.returncode == 0 and r.stdout.startswith("The cat"), r.stdout + r.stderr
    r = run_cli("complete", "--model", "ft-missing", "-p", "x", "--runs_dir", tmp_path / "runs")
    assert r.returncode == 2 and "Traceback" not in r.stderr
