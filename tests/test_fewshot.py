"""Stage 4 (few-shot) unit tests: task files and their errors, prompts, demonstrations, scoring, and the
batched/prefix-cached engine against a plain one-prompt-at-a-time computation, on a tiny random Llama."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hfrepro.errors import UserError
from hfrepro.fewshot import builtin_tasks, load_task, load_tasks, normalize
from hfrepro.fewshot.tasks import TASKS_DIR

WORDS = ("goat snake bird horse house water money light river table chair apple green stone cloud "
         "paper music dog cat sun moon star tree").split()


# --- fixtures -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random Llama + a BPE tokenizer trained on task-like lines, saved as a model folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hfrepro.tokenizer import train_bpe

    lines = [f"{w} => {w.upper()}" for w in WORDS] + [f"Q: What is {a} plus {b}?\nA: {a + b}"
                                                     for a in range(10, 40, 3) for b in range(11, 30, 7)]
    tok = train_bpe(lines * 3, vocab_size=400, min_frequency=1)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg).eval()
    d = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d, model, tok


def write_task(tmp: Path, rows: list[dict] | None = None, **fields) -> Path:
    rows = rows if rows is not None else (
        [{"word": w, "upper": w.upper(), "split": "train"} for w in WORDS[:8]]
        + [{"word": w, "upper": w.upper(), "split": "test"} for w in WORDS[8:]])
    (tmp / "words.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = {"name": "caps", "instruction": "Write each word in capital letters.", "template": "{word} =>",
            "answer": "{upper}", "data": "words.jsonl", **fields}
    import yaml
    p = tmp / "caps.yaml"
    p.write_text(yaml.safe_dump({k: v for k, v in spec.items() if v is not None}), encoding="utf-8")
    return p


# --- task files ----------------------------------------------------------------------------------------

def test_builtin_tasks_load_and_have_data():
    names = builtin_tasks()
    for need in ("uppercase", "unscramble_swap", "unscramble_cycle", "unscramble_anagram", "translate_en_fr",
                 "translate_en_ko", "add_2digit", "add_3digit", "capital_mc"):
        assert need in names
    for t in load_tasks("all"):
        assert t.test_rows() and len(t.demo_rows()) >= 8, t.name
        tests = {json.dumps(r, sort_keys=True) for r in t.test_rows()}
        assert not any(json.dumps(r, sort_keys=True) in tests for r in t.demo_rows()), f"{t.name}: demo in test"
        if t.scoring == "multiple_choice":
            assert all(0 <= t.gold_index(r) < len(t.choice_list(r)) for r in t.test_rows())


def test_builtin_task_contents():
    t = load_task("unscramble_swap")
    for r in t.test_rows():
        w, s = r["word"], r["scrambled"]
        assert sorted(w) == sorted(s) and w != s and w[0] == s[0]
        diff = [i for i in range(len(w)) if w[i] != s[i]]
        assert len(diff) == 2 and diff[1] == diff[0] + 1
    for r in load_task("unscramble_cycle").test_rows():
        assert r["scrambled"] in r["word"] * 2 and r["scrambled"] != r["word"]
    for r in load_task("add_3digit").test_rows():
        assert 100 <= r["a"] <= 999 and 100 <= r["b"] <= 999 and int(r["answer"]) == r["a"] + r["b"]
    for r in load_task("sub_2digit").test_rows():
        assert int(r["answer"]) == r["a"] - r["b"] >= 0
    en_test = {r["en"].lower() for r in load_task("translate_en_fr").test_rows()}
    assert not en_test & {r["en"].lower() for r in load_task("translate_en_fr").demo_rows()}


def test_normalisation():
    assert normalize("  Loutre de  Mer. ", ["strip", "lower", "punctuation", "whitespace"]) == "loutre de mer"
    assert normalize(" GOAT ", ["strip"]) == "GOAT"
    assert normalize("ｇｏａｔ", ["nfkc"]) == "goat"
    t = load_task("uppercase")
    row = {"word": "goat", "upper": "GOAT"}
    assert t.is_correct(" GOAT", row) and not t.is_correct("goat", row)     # case matters for uppercase
    t = load_task("translate_en_fr")
    row = {"en": "Cheese", "fr": "Fromage", "aliases": ["Le fromage"]}
    assert t.is_correct("fromage.", row) and t.is_correct("le Fromage", row) and not t.is_correct("fromages", row)


def test_extract_cuts_at_stop_and_regex(tmp_path):
    t = load_task(write_task(tmp_path, answer_regex=r"([A-Z]+)"))
    assert t.extract(" GOAT\nsnake => SNAKE") == "GOAT"
    assert t.extract("\nGOAT") == ""                     # lm-eval's `until` rule: cut at the first stop
    assert t.extract(" the word GOAT.") == "GOAT"


@pytest.mark.parametrize("fields,rows,message", [
    ({"template": None}, None, "missing required field(s): template"),
    ({"metric": "bleu"}, None, "unknown metric 'bleu'"),
    ({"scoring": "ranking"}, None, "unknown scoring"),
    ({"tempalte": "{word}"}, None, "unknown field(s) in task: tempalte"),
    ({"template": "{wrd} =>"}, None, "has no column(s) wrd"),
    ({}, [], "has no rows"),
    ({}, [{"word": "a", "upper": "A", "split": "test"}], "demonstration split 'train' is empty"),
    ({"normalize": ["lower", "stem"]}, None, "unknown normalisation step(s): stem"),
    ({"scoring": "multiple_choice", "metric": "acc"}, None, "needs `choices`"),
    ({"data": "nope.jsonl"}, None, "data file not found"),
    ({"template": "{word =>"}, None, "not a valid template"),
])
def test_task_errors_are_clear(tmp_path, fields, rows, message):
    p = write_task(tmp_path, rows=rows, **{k: v for k, v in fields.items() if v is not None})
    if fields.get("template", 1) is None:
        import yaml
        spec = yaml.safe_load(p.read_text())
        spec.pop("template")
        p.write_text(yaml.safe_dump(spec))
    with pytest.raises(UserError) as e:
        load_task(p).splits()
    assert message in e.value.render() and str(p) in e.value.render()


def test_unknown_task_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="unknown task 'nope'"):
        load_task("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntemplate: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_task(bad)


def test_single_file_without_split_column_is_split_with_a_seed(tmp_path):
    rows = [{"word": w, "upper": w.upper()} for w in WORDS]
    t = load_task(write_task(tmp_path, rows=rows))
    demo, test = t.demo_rows(), t.test_rows()
    assert len(demo) + len(test) == len(WORDS) and not {r["word"] for r in demo} & {r["word"] for r in test}
    assert demo == load_task(write_task(tmp_path, rows=rows)).demo_rows()


def test_mc_from_a_tsv_with_choice_templates(tmp_path):
    (tmp_path / "d.tsv").write_text("q\ta\tb\tgold\tsplit\n" + "".join(
        f"q{i}\tyes\tno\t{'yes' if i % 2 else 'no'}\t{'test' if i < 6 else 'train'}\n" for i in range(10)))
    (tmp_path / "t.yaml").write_text('name: yn\nscoring: multiple_choice\ntemplate: "{q}?"\nanswer: "{gold}"\n'
                                     'choices: ["{a}", "{b}"]\ndata: d.tsv\n')
    t = load_task(tmp_path / "t.yaml")
    assert [t.gold_index(r) for r in t.test_rows()] == [1, 0, 1, 0, 1, 0]
    assert t.primary_metric == "acc"


# --- prompts and demonstrations ------------------------------------------------------------------------

def test_raw_prompt_layout_and_fixed_demos(tmp_path):
    from hfrepro.fewshot import build_prompt, demonstrations

    t = load_task(write_task(tmp_path))
    d3 = demonstrations(t, 3, seed=1)
    assert demonstrations(t, 1, seed=1) == d3[:1]            # nested: 1-shot demo is the first 3-shot one
    assert demonstrations(t, 8, seed=1)[:3] == d3
    assert demonstrations(t, 3, seed=1) == d3 and demonstrations(t, 3, seed=2) != d3
    assert all(d in t.demo_rows() for d in d3)
    row = t.test_rows()[0]
    p = build_prompt(t, d3, row)
    assert p == ("Write each word in capital letters.\n"
                 + "".join(f"{d['word']} => {d['upper']}\n" for d in d3) + f"{row['word']} =>")
    assert build_prompt(t, [], row) == f"Write each word in capital letters.\n{row['word']} =>"
    assert build_prompt(t, d3, row, instruction=False) == p[len("Write each word in capital letters.\n"):]
    per = [demonstrations(t, 3, seed=1, mode="per_example", index=i) for i in range(4)]
    assert len({json.dumps(p) for p in per}) > 1


def test_chat_prompt(tiny, tmp_path):
    from hfrepro.fewshot import build_prompt

    _, _, tok = tiny
    tok = type(tok).from_pretrained(tiny[0])
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    t = load_task(write_task(tmp_path))
    d = t.demo_rows()[:1]
    p = build_prompt(t, d, t.test_rows()[0], "chat", tok)
    assert p == (f"<system>Write each word in capital letters.\n<user>{d[0]['word']} =>\n"
                 f"<assistant>{d[0]['upper']}\n<user>{t.test_rows()[0]['word']} =>\n<assistant>")


# --- the engine against a plain computation -----------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_gpt2(tiny):
    """A tiny GPT-2 (the architecture of this project's own `clm` models) with the same tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    _, _, tok = tiny
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=256,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return GPT2LMHeadModel(cfg).eval()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_prefix_cached_batched_generation_equals_one_by_one(tiny, tiny_gpt2, tmp_path, arch):
    import torch

    from hfrepro.fewshot import build_prompt, demonstrations
    from hfrepro.fewshot.evaluator import _Engine

    _, model, tok = tiny
    model = model if arch == "llama" else tiny_gpt2
    t = load_task(write_task(tmp_path, max_new_tokens=5, stop=["@@"]))   # never stops early: compare all tokens
    rows = t.test_rows()
    prompts = [build_prompt(t, demonstrations(t, 4, 0), r) for r in rows]
    eng = _Engine(model, tok, torch.device("cpu"), batch_size=4, prompt_format="raw")
    got = eng.generate(prompts, t)
    want = []
    for p in prompts:
        ids = tok(p, return_tensors="pt").input_ids
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        want.append(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    assert eng._prefix([tok(p).input_ids for p in prompts], 10_000)[0] > 10    # the prefix cache was used
    assert got == want


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_batched_loglikelihood_equals_full_forward(tiny, tiny_gpt2, arch):
    import torch

    from hfrepro.fewshot.evaluator import _Engine

    _, model, tok = tiny
    model = model if arch == "llama" else tiny_gpt2
    ctx = "Q: What is 12 plus 30?\nA: 42\n\nQ: What is 21 plus 17?\nA:"
    pairs = [(ctx, " 38"), (ctx, " 39"), (ctx, " 138"), (ctx + " ", "38"), ("goat =>", " GOAT")]
    eng = _Engine(model, tok, torch.device("cpu"), batch_size=2, prompt_format="raw")
    got = eng.loglikelihood(pairs)
    for (c, x), g in zip(pairs, got):
        n = len(c) - len(c.rstrip())
        c, x = (c[:-n], c[-n:] + x) if n else (c, x)
        whole, nc = tok(c + x).input_ids, len(tok(c).input_ids)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([whole])).logits[0], -1)
        want = sum(float(logp[i - 1, whole[i]]) for i in range(nc, len(whole)))
        assert g == pytest.approx(want, abs=1e-4)
    assert got[0] != got[1]


# --- evaluate() end to end -----------------------------------------------------------------------------

def test_evaluate_end_to_end_saves_everything(tiny, tmp_path):
    from hfrepro.fewshot import evaluate, load_results

    d, _, _ = tiny
    task = write_task(tmp_path)
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(
        {"w": w, "c": [w.upper(), w, w[::-1]], "split": "test" if i >= 6 else "train"}) + "\n"
        for i, w in enumerate(WORDS)))
    (tmp_path / "mc.yaml").write_text('name: mc\nscoring: multiple_choice\ntemplate: "{w} =>"\nanswer: "{w}"\n'
                                      'choices: c\nmetric: [acc, acc_norm]\ndata: mc.jsonl\n')
    res = evaluate(str(d), [str(task), str(tmp_path / "mc.yaml")], shots=[0, 2], limit=5, progress=False,
                   batch_size=3)
    assert set(res.scores) == {"caps", "mc"} and set(res.scores["caps"]) == {0, 2}
    assert res.scores["caps"][2]["n"] == 5 and 0.0 <= res.accuracy("mc", 2) <= 1.0
    s = res.samples["caps"][2][0]
    assert s["prompt"].count("=>") == 3 and s["target"] == s["prompt"].split("\n")[-1].split()[0].upper()
    m = res.samples["mc"][0][0]
    assert m["acc"] == (m["loglikelihoods"].index(max(m["loglikelihoods"])) == m["gold"])
    again = evaluate(str(d), [str(task)], shots=[2], limit=5, progress=False, batch_size=5)
    assert [x["generation"] for x in again.samples["caps"][2]] == [x["generation"] for x in res.samples["caps"][2]]
    paths = res.save(tmp_path / "out")
    assert paths["plot"].stat().st_size > 1000 and "| caps |" in paths["table"].read_text()
    from hfrepro.fewshot.report import slug
    assert res.label == d.name
    lines = (tmp_path / "out/samples" / slug(res.label) / "caps.jsonl").read_text().splitlines()
    assert len(lines) == 10 and json.loads(lines[0])["shots"] == 0
    assert load_results(tmp_path / "out")[0].scores["caps"][2] == res.scores["caps"][2]


def test_evaluate_rejects_bad_arguments(tiny, tmp_path):
    from hfrepro.fewshot import evaluate

    d, model, tok = tiny
    task = write_task(tmp_path)
    with pytest.raises(UserError, match="fewer than the 20 shots"):
        evaluate(model, [str(task)], shots=[20], tokenizer=tok)
    with pytest.raises(UserError, match="unknown prompt format"):
        evaluate(model, [str(task)], tokenizer=tok, prompt_format="markdown")
    with pytest.raises(UserError, match="shots must be"):
        evaluate(model, [str(task)], tokenizer=tok, shots="0,one")
    with pytest.raises(UserError, match="no chat template"):
        evaluate(model, [str(task)], shots=[0], tokenizer=tok, prompt_format="chat", limit=1)


def test_prompts_longer_than_the_context_are_skipped_not_truncated(tiny, tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hfrepro.fewshot import evaluate

    _, _, tok = tiny
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    torch.manual_seed(0)
    res = evaluate(LlamaForCausalLM(cfg), [str(write_task(tmp_path))], shots=[0, 8], tokenizer=tok, limit=2,
                   progress=False)
    assert res.scores["caps"][0]["n"] == 2 and res.scores["caps"][8] is None
    assert res.table_rows()[0]["8-shot"] is None


def test_lora_adapter_base_plus_adapter(tiny, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from hfrepro.fewshot import evaluate

    d, _, _ = tiny
    base = AutoModelForCausalLM.from_pretrained(d)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_alpha=8))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)                      # a trained-looking adapter, so outputs change
    peft_model.save_pretrained(tmp_path / "adapter")
    task = write_task(tmp_path, max_new_tokens=4)
    plain = evaluate(str(d), [str(task)], shots=[1], limit=4, progress=False)
    with_adapter = evaluate(str(tmp_path / "adapter"), [str(task)], shots=[1], limit=4, progress=False)
    explicit = evaluate(str(d), [str(task)], shots=[1], limit=4, progress=False, adapter=str(tmp_path / "adapter"))
    gens = lambda r: [x["generation"] for x in r.samples["caps"][1]]  # noqa: E731
    assert gens(with_adapter) == gens(explicit) != gens(plain)
    assert explicit.model.endswith("+adapter")


def test_per_example_demos_and_no_instruction(tiny, tmp_path):
    from hfrepro.fewshot import evaluate

    _, model, tok = tiny
    task = write_task(tmp_path, max_new_tokens=2)
    res = evaluate(model, [str(task)], shots=[2], tokenizer=tok, limit=6, demos="per_example", progress=False,
                   instruction=False)
    prompts = [s["prompt"] for s in res.samples["caps"][2]]
    demo_parts = {p.rsplit("\n", 1)[0] for p in prompts}
    assert len(demo_parts) > 1 and not any(p.startswith("Write each word") for p in prompts)
    assert res.label.endswith("(no instruction)") and res.to_dict()["config"]["demos"] == "per_example"


def test_a_model_in_training_is_left_as_it_was(tiny, tmp_path):
    """Other stages evaluate a model mid-training: it must come back in train mode, its tokenizer unchanged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hfrepro.fewshot import evaluate

    d, _, _ = tiny
    model = AutoModelForCausalLM.from_pretrained(d)
    model.config.use_cache = False
    model.train()
    tok = AutoTokenizer.from_pretrained(d)
    tok.pad_token = None
    res = evaluate(model, [str(write_task(tmp_path, max_new_tokens=3))], shots=[0, 1], tokenizer=tok, limit=3,
                   progress=False)
    assert res.scores["caps"][1]["n"] == 3
    assert model.training and tok.pad_token is None and res.config["device"] == "cpu"
