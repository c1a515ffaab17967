"""Stage 6 (few-shot) unit tests: lm-evaluation-harness task files and their errors, prompts and demonstrations
(the same as lm-eval's), scoring, the batched/prefix-cached engine against a plain computation, evaluate(), the
recipe and the stage module, on a tiny random Llama."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfrepro.errors import UserError
from hfrepro.fewshot.evaluator import _Engine, available_demos, build_prompt, demo_sets, demonstrations, evaluate
from hfrepro.fewshot.report import load_results, slug
from hfrepro.fewshot.tasks import TASKS_DIR, apply_filters, builtin_tasks, exact_match, load_task, load_tasks
from tests.conftest import REPO, launch_two, run_cli

WORDS = ("goat snake bird horse house water money light river table chair apple green stone cloud "
         "paper music dog cat sun moon star tree").split()
WORD_CLASS = REPO / "hfrepro/finetune/tasks/word_class.yaml"


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


def write_task(tmp: Path, rows: list[dict] | None = None, name: str = "caps", **keys) -> Path:
    """A user's lm-eval task YAML over local JSONL files (one per split), as lm-eval's docs write one."""
    rows = rows if rows is not None else (
        [{"word": w, "upper": w.upper(), "split": "train"} for w in WORDS[:8]]
        + [{"word": w, "upper": w.upper(), "split": "test"} for w in WORDS[8:]])
    for split in ("train", "test"):
        (tmp / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows
                                                    if r.get("split") == split), encoding="utf-8")
    spec = {"task": name, "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"train": str(tmp / "train.jsonl"), "test": str(tmp / "test.jsonl")}},
            "training_split": "train", "test_split": "test", "fewshot_split": "train",
            "fewshot_config": {"sampler": "first_n"}, "output_type": "generate_until",
            "description": "Write each word in capital letters.\n", "doc_to_text": "{{word}} =>",
            "doc_to_target": "{{upper}}", "target_delimiter": " ", "fewshot_delimiter": "\n",
            "generation_kwargs": {"until": ["\n"], "max_gen_toks": 8, "do_sample": False},
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}], **keys}
    import yaml
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump({k: v for k, v in spec.items() if v is not None}, allow_unicode=True),
                 encoding="utf-8")
    return p


# --- the built-in task files ------------------------------------------------------------------------------

def test_builtin_tasks_load_and_have_data():
    names = builtin_tasks()
    assert len(names) == 13 and not any(n.startswith("_") for n in names)   # _*.yaml are include bases
    stage5 = [load_task("word_class"), load_task("word_class_mc")]         # stage 7's, found by name too
    assert [t.path for t in stage5] == [WORD_CLASS, WORD_CLASS.with_name("word_class_mc.yaml")]
    for t in load_tasks("all") + stage5:
        assert t.test_rows() and len(t.demo_rows()) >= 16 and available_demos(t) == 16, t.name
        tests = {json.dumps(r, sort_keys=True) for r in t.test_rows()}
        assert not any(json.dumps(r, sort_keys=True) in tests for r in t.demo_rows()), f"{t.name}: demo in test"
        if t.output_type == "multiple_choice":
            assert all(0 <= t.gold_index(r) < len(t.choice_list(r)) for r in t.test_rows())


def test_builtin_demonstrations_are_the_seeded_permutation_of_the_train_split():
    """Each task file lists its 16 demonstrations: the first 16 of the train split shuffled with the key
    "1234:<task>" (`--demos fixed --seed 1234`), so the prompts are those hfrepro always used."""
    for t in load_tasks("all") + [load_task(WORD_CLASS)]:
        listed = demo_sets(t, 16, 1234, "task", [{}])[0]
        drawn = [{k: v for k, v in r.items() if k != "split"} for r in demonstrations(t, 16, 1234, "fixed")]
        assert listed == drawn, t.name
        assert t.sampler == "first_n" and demo_sets(t, 3, 1234, "task", [{}])[0] == listed[:3]


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


def test_builtin_scoring():
    t = load_task("uppercase")                                   # case matters; outer whitespace does not
    row = {"word": "goat", "upper": "GOAT"}
    assert t.score_generation(t.extract(" GOAT\nsnake => SNAKE"), row) == {"exact_match": True}
    assert not t.score_generation("goat", row)["exact_match"]
    t = load_task("translate_en_fr")                             # any accepted answer; case and punctuation not
    row = {"en": "Cheese", "fr": "Fromage", "aliases": ["Le fromage"]}
    assert t.targets(row) == ["Fromage", "Le fromage"] and t.target(row) == "Fromage"
    for pred, ok in (("fromage.", True), (" le  Fromage ", True), ("« Fromage »", True), ("fromages", False)):
        assert t.score_generation(t.extract(pred), row)["exact_match"] is ok, pred
    assert load_task("add_2digit").score_generation(" 124", {"a": 48, "b": 76, "answer": "124"})["exact_match"]


def test_exact_match_and_filters_are_lm_evals():
    metrics = pytest.importorskip("lm_eval.api.metrics")
    cases = [(" Paris.", ["paris"], {"ignore_case": True, "ignore_punctuation": True}),
             (" Paris .", ["paris"], {"ignore_case": True, "ignore_punctuation": True,
                                      "regexes_to_ignore": ["^\\s+|\\s+$"]}),
             ("4,2", ["42"], {"ignore_punctuation": True}), ("x 12", ["x "], {"ignore_numbers": True}),
             ("GOAT", ["goat", "GOAT"], {}), ("a  b", ["a b"], {"regexes_to_ignore": ["\\s(?=\\s)"]})]
    for pred, refs, kw in cases:
        theirs = metrics.exact_match_hf_evaluate([pred] * len(refs), refs, **kw)["exact_match"] > 0
        assert exact_match(pred, refs, **kw) is bool(theirs), (pred, refs, kw)
    steps = [{"function": "regex", "regex_pattern": r"#### (\-?[0-9\.\,]+)"}, {"function": "take_first"}]
    assert apply_filters("so #### 42 and #### 7", steps) == "42"
    assert apply_filters("no number", steps) == "[invalid]"
    assert apply_filters("  Yes ", [{"function": "remove_whitespace"}, {"function": "lowercase"}]) == "yes"


# --- a user's lm-eval task file -----------------------------------------------------------------------------

def test_a_user_lm_eval_yaml_loads_as_lm_eval_reads_it(tmp_path):
    t = load_task(write_task(tmp_path))
    assert t.name == "caps" and t.primary_metric == "exact_match" and t.until == ["\n"] and t.max_gen_toks == 8
    assert len(t.test_rows()) == len(WORDS) - 8 and len(t.demo_rows()) == 8
    row = t.test_rows()[0]
    assert build_prompt(t, t.demo_rows()[:2], row) == (
        "Write each word in capital letters.\ngoat => GOAT\nsnake => SNAKE\n" + f"{row['word']} =>")
    # lm-eval's defaults when keys are left out: generation stops at the few-shot delimiter, 256 tokens,
    # exact_match; multiple choice scores acc and acc_norm; data paths may be relative to the YAML
    p = write_task(tmp_path, generation_kwargs=None, metric_list=None, fewshot_delimiter="\n\n")
    spec = p.read_text().replace(str(tmp_path) + "/", "")
    p.write_text(spec)
    t = load_task(p)
    assert t.until == ["\n\n"] and t.max_gen_toks == 256 and t.metrics == ["exact_match"] and t.test_rows()


def test_jinja_rules_are_lm_evals(tmp_path):
    rows = [{"q": f"q{i}", "options": ["yes", "no"], "label": i % 2, "alts": ["A", "B"], "split": s}
            for i, s in enumerate(["train"] * 4 + ["test"] * 4)]
    t = load_task(write_task(tmp_path, rows, name="yn", output_type="multiple_choice", doc_to_text="q",
                             doc_to_target="{{label}}", doc_to_choice="{{options}}", generation_kwargs=None,
                             description="Answer {{q}}:\n", metric_list=[{"metric": "acc"}, {"metric": "acc_norm"}]))
    r = t.test_rows()[1]
    assert t.question(r) == "q5"                                  # a column name gives the column
    assert t.choice_list(r) == ["yes", "no"] and t.gold_index(r) == 1 and t.target(r) == "no"   # "1" -> index
    assert t.header(r) == "Answer q5:\n"                          # the description is rendered on the row
    assert t.demo_text(t.demo_rows()[0]) == "q0 yes\n"
    t2 = load_task(write_task(tmp_path, rows, name="alts", doc_to_target="{{alts + [q]}}"))
    assert t2.targets(r) == ["A", "B", "q5"]                      # a rendered list = several accepted answers


def test_include_variants_and_unicode_names(tmp_path):
    base = write_task(tmp_path, name="base")
    (tmp_path / "_base.yaml").write_text(base.read_text().replace("task: base\n", ""), encoding="utf-8")
    base.unlink()
    (tmp_path / "ko.yaml").write_text("include: _base.yaml\ntask: 대문자\ndescription: \"대문자로 쓰세요.\\n\"\n",
                                      encoding="utf-8")
    t = load_task(tmp_path / "ko.yaml")
    assert t.name == "대문자" and t.header({}) == "대문자로 쓰세요.\n" and t.doc_to_text == "{{word}} =>"
    assert load_task("대문자", include_path=tmp_path).name == "대문자"      # by name under --include_path
    assert slug("모델 (chat)") == "모델_chat"


@pytest.mark.parametrize("keys,rows,message", [
    ({"doc_to_txt": "{{word}}"}, None, "unknown key(s) in task: doc_to_txt"),
    ({"process_results": "x"}, None, "`process_results`: a Python scoring function is not implemented"),
    ({"metric_list": [{"metric": "bleu"}]}, None, "metric 'bleu' is not implemented for output_type"),
    ({"output_type": "loglikelihood_rolling"}, None, "output_type 'loglikelihood_rolling' is not implemented"),
    ({"generation_kwargs": {"until": ["\n"], "do_sample": True}}, None, "sampling"),
    ({"doc_to_text": "{{wrd}} =>"}, None, "cannot render doc_to_text"),
    ({"doc_to_text": "{{word =>"}, None, "not a valid Jinja template"),
    ({"dataset_kwargs": {"data_files": {"test": "nope.jsonl"}}}, None, "cannot load its data"),
    ({"test_split": "validation"}, None, "the scored split 'validation' is empty or missing"),
    ({"output_type": "multiple_choice", "doc_to_choice": "{{['x', 'y']}}", "generation_kwargs": None,
      "metric_list": None}, None, "is not one of the choices"),
    ({"filter_list": [{"name": "a", "filter": [{"function": "take_first"}]},
                      {"name": "b", "filter": [{"function": "take_first"}]}]}, None, "one filter pipeline"),
    ({"task": "a/b"}, None, "`task` must be a name"),
])
def test_task_errors_are_clear(tmp_path, keys, rows, message):
    p = write_task(tmp_path, rows=rows, **keys)
    with pytest.raises(UserError) as e:
        load_task(p).splits()
    assert message in e.value.render() and str(p) in e.value.render(), e.value.render()


def test_unknown_task_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="unknown task 'nope'"):
        load_task("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: x\ndoc_to_text: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_task(bad)


# --- demonstrations and prompts: the same as lm-eval's ---------------------------------------------------

def test_lm_evals_default_sampler_is_reproduced(tmp_path):
    samplers = pytest.importorskip("lm_eval.api.samplers")
    t = load_task(write_task(tmp_path, fewshot_config={"sampler": "default"}))
    rows = t.test_rows()
    ours = demo_sets(t, 3, 1234, "task", rows)
    theirs = samplers.ContextSampler(list(t.fewshot_docs()), rnd=1234)
    assert ours == [theirs.sample(3) for _ in rows] and len({json.dumps(d) for d in ours}) > 1
    # demonstrations drawn from the scored split never include the scored row itself
    t = load_task(write_task(tmp_path, fewshot_split="test", fewshot_config={"sampler": "default"}))
    rows = t.test_rows()
    theirs = samplers.ContextSampler(list(t.fewshot_docs()), rnd=7)
    ours = demo_sets(t, 4, 7, "task", rows)
    assert ours == [theirs.sample(4, eval_doc=r) for r in rows] and all(r not in d for r, d in zip(rows, ours))


def test_prompts_are_lm_evals_for_every_builtin_task():
    """lm-eval reads hfrepro's task folder as it is and builds the same prompt, byte for byte."""
    tasks_mod = pytest.importorskip("lm_eval.tasks")
    tm = tasks_mod.TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    theirs = tm.load(builtin_tasks())["tasks"]
    for t in load_tasks("all"):
        lm_task = theirs[t.name]
        rows = t.test_rows(3)
        for k in (0, 3):
            lm_task.set_fewshot_seed(1234)
            ours = [build_prompt(t, d, r) for d, r in zip(demo_sets(t, k, 1234, "task", rows), rows)]
            assert [lm_task.fewshot_context(doc, k) for doc in list(lm_task.test_docs())[:3]] == ours, (t.name, k)


def test_raw_prompt_layout_and_fixed_demos(tmp_path):
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
    assert demonstrations(t, 3, seed=1, mode="task") == t.demo_rows()[:3]     # the file's first_n sampler


def test_chat_prompt(tiny, tmp_path):
    _, _, tok = tiny
    tok = type(tok).from_pretrained(tiny[0])
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    t = load_task(write_task(tmp_path))
    d = t.demo_rows()[:1]
    p = build_prompt(t, d, t.test_rows()[0], "chat", tok)
    assert p == (f"<system>Write each word in capital letters.\n\n<user>{d[0]['word']} =>\n"
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

    _, model, tok = tiny
    model = model if arch == "llama" else tiny_gpt2
    t = load_task(write_task(tmp_path, generation_kwargs={"until": ["@@"], "max_gen_toks": 5}))   # no early stop
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

    _, model, tok = tiny
    model = model if arch == "llama" else tiny_gpt2
    ctx = "Q: What is 12 plus 30?\nA: 42\n\nQ: What is 21 plus 17?\nA:"
    pairs = [(ctx, " 38"), (ctx, " 39"), (ctx, " 138"), (ctx + " ", "38"), ("goat =>", " GOAT")]
    eng = _Engine(model, tok, torch.device("cpu"), batch_size=2, prompt_format="raw")
    got = eng.loglikelihood(pairs)
    for (c, x), (g, greedy) in zip(pairs, got):
        n = len(c) - len(c.rstrip())
        c, x = (c[:-n], c[-n:] + x) if n else (c, x)
        whole, nc = tok(c + x).input_ids, len(tok(c).input_ids)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([whole])).logits[0], -1)
        assert g == pytest.approx(sum(float(logp[i - 1, whole[i]]) for i in range(nc, len(whole))), abs=1e-4)
        assert greedy == all(int(logp[i - 1].argmax()) == whole[i] for i in range(nc, len(whole)))
    assert got[0][0] != got[1][0]


# --- evaluate() end to end -----------------------------------------------------------------------------

def test_evaluate_end_to_end_saves_everything(tiny, tmp_path):
    d, _, _ = tiny
    task = write_task(tmp_path)
    mc_rows = [{"w": w, "c": [w.upper(), w, w[::-1]], "split": "test" if i >= 6 else "train"}
               for i, w in enumerate(WORDS)]
    (tmp_path / "mc").mkdir()
    mc = write_task(tmp_path / "mc", mc_rows, name="mc", output_type="multiple_choice", doc_to_text="{{w}} =>",
                    doc_to_target="{{w}}", doc_to_choice="c", generation_kwargs=None, description=None,
                    metric_list=[{"metric": "acc"}, {"metric": "acc_norm"}, {"metric": "acc_bytes"}])
    res = evaluate(str(d), [str(task), str(mc)], shots=[0, 2], limit=5, progress=False, batch_size=3)
    assert set(res.scores) == {"caps", "mc"} and set(res.scores["caps"]) == {0, 2}
    assert res.scores["caps"][2]["n"] == 5 and 0.0 <= res.accuracy("mc", 2) <= 1.0
    s = res.samples["caps"][2][0]
    assert s["prompt"].count("=>") == 3 and s["target"] == s["prompt"].split("\n")[-1].split()[0].upper()
    m = res.samples["mc"][0][0]
    assert m["acc"] == (m["loglikelihoods"].index(max(m["loglikelihoods"])) == m["gold"])
    assert res.tasks["mc"]["chance"] == pytest.approx(1 / 3) and set(res.scores["mc"][0]) == {
        "n", "acc", "acc_norm", "acc_bytes"}
    again = evaluate(str(d), [str(task)], shots=[2], limit=5, progress=False, batch_size=5)
    assert [x["generation"] for x in again.samples["caps"][2]] == [x["generation"] for x in res.samples["caps"][2]]
    paths = res.save(tmp_path / "out")
    assert paths["plot"].stat().st_size > 1000 and "| caps |" in paths["table"].read_text()
    assert res.label == d.name
    lines = (tmp_path / "out/samples" / slug(res.label) / "caps.jsonl").read_text().splitlines()
    assert len(lines) == 10 and json.loads(lines[0])["shots"] == 0
    back = load_results(tmp_path / "out", samples=True)[0]
    assert back.scores["caps"][2] == res.scores["caps"][2] and back.samples["caps"][2] == res.samples["caps"][2]


def test_loglikelihood_tasks(tiny, tmp_path):
    _, model, tok = tiny
    t = write_task(tmp_path, output_type="loglikelihood", doc_to_target=" {{upper}}", generation_kwargs=None,
                   metric_list=None)
    res = evaluate(model, [str(t)], shots=[0, 2], tokenizer=tok, limit=4, progress=False)
    recs = res.samples["caps"][2]
    import math
    assert res.scores["caps"][2]["perplexity"] == pytest.approx(
        math.exp(-sum(r["loglikelihood"] for r in recs) / 4), rel=1e-3)
    assert res.tasks["caps"]["metric"] == "perplexity" and "acc" in res.scores["caps"][2]


def test_evaluate_rejects_bad_arguments(tiny, tmp_path):
    d, model, tok = tiny
    task = write_task(tmp_path)
    with pytest.raises(UserError, match="fewer than the 20 shots"):
        evaluate(model, [str(task)], shots=[20], tokenizer=tok)
    with pytest.raises(UserError, match="unknown prompt format"):
        evaluate(model, [str(task)], tokenizer=tok, prompt_format="markdown")
    with pytest.raises(UserError, match="shots must be"):
        evaluate(model, [str(task)], tokenizer=tok, shots="0,one")
    with pytest.raises(UserError, match="unknown demonstration mode"):
        evaluate(model, [str(task)], tokenizer=tok, demos="random")
    with pytest.raises(UserError, match="no chat template"):
        evaluate(model, [str(task)], shots=[0], tokenizer=tok, prompt_format="chat", limit=1)


def test_prompts_longer_than_the_context_are_skipped_not_truncated(tiny, tmp_path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

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

    d, _, _ = tiny
    base = AutoModelForCausalLM.from_pretrained(d)
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_alpha=8))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)                      # a trained-looking adapter, so outputs change
    peft_model.save_pretrained(tmp_path / "adapter")
    task = write_task(tmp_path, generation_kwargs={"until": ["\n"], "max_gen_toks": 4})
    plain = evaluate(str(d), [str(task)], shots=[1], limit=4, progress=False)
    with_adapter = evaluate(str(tmp_path / "adapter"), [str(task)], shots=[1], limit=4, progress=False)
    explicit = evaluate(str(d), [str(task)], shots=[1], limit=4, progress=False, adapter=str(tmp_path / "adapter"))
    gens = lambda r: [x["generation"] for x in r.samples["caps"][1]]  # noqa: E731
    assert gens(with_adapter) == gens(explicit) != gens(plain)
    assert explicit.model.endswith("+adapter")


def test_per_example_demos_and_no_instruction(tiny, tmp_path):
    _, model, tok = tiny
    task = write_task(tmp_path, generation_kwargs={"until": ["\n"], "max_gen_toks": 2})
    res = evaluate(model, [str(task)], shots=[2], tokenizer=tok, limit=6, demos="per_example", progress=False,
                   instruction=False)
    prompts = [s["prompt"] for s in res.samples["caps"][2]]
    demo_parts = {p.rsplit("\n", 1)[0] for p in prompts}
    assert len(demo_parts) > 1 and not any(p.startswith("Write each word") for p in prompts)
    assert res.label.endswith("(no instruction)") and res.to_dict()["config"]["demos"] == "per_example"


def test_a_model_in_training_is_left_as_it_was(tiny, tmp_path):
    """Other stages evaluate a model mid-training: it must come back in train mode, its tokenizer unchanged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d, _, _ = tiny
    model = AutoModelForCausalLM.from_pretrained(d)
    model.config.use_cache = False
    model.train()
    tok = AutoTokenizer.from_pretrained(d)
    tok.pad_token = None
    res = evaluate(model, [str(write_task(tmp_path, generation_kwargs={"until": ["\n"], "max_gen_toks": 3}))],
                   shots=[0, 1], tokenizer=tok, limit=3, progress=False)
    assert res.scores["caps"][1]["n"] == 3
    assert model.training and tok.pad_token is None and res.config["device"] == "cpu"


def test_stage_5s_use_of_the_api(tiny):
    """finetune: the word_class task by path, its train rows as training data, a fine-tuned model asked
    without the description, scored at 0 shots."""
    _, model, tok = tiny
    t = load_task(WORD_CLASS)
    r = t.demo_rows()[0]
    prompt = build_prompt(t, [], r, instruction=False)
    shown = build_prompt(t, [r], r, instruction=False)
    assert prompt == f"{r['word']} ->" and shown[len(prompt):len(shown) - len(prompt)].rstrip() == " " + r["pos"]
    assert build_prompt(t, [], t.test_rows()[0]).startswith(t.instruction)
    res = evaluate(model, [t], shots=[0, 2], tokenizer=tok, limit=3, seed=1234, batch_size=2, progress=False,
                   instruction=False)
    assert res.scores["word_class"][2]["n"] == 3 and res.accuracy("word_class", 0) is not None


# --- the recipe, the tool commands and the stage module -----------------------------------------------------

def test_recipe_runs_from_anywhere_and_a_rerun_is_a_no_op(tiny, tmp_path):
    d, _, _ = tiny
    user = write_task(tmp_path, name="반의어")                 # a user's lm-eval YAML, a Korean task name
    out = tmp_path / "run"
    args = ["fewshot", "--budget", "tiny", "--model", d, "--tasks", f"uppercase,{user}", "--limit", "3",
            "--output_dir", out, "--threads", "1"]
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["scores"][d.name]) == {"uppercase", "반의어"} and m["scores"][d.name]["반의어"]["3"]["n"] == 3
    for f in ("results.json", "table.md", "accuracy_vs_shots.png", "README.md", "config.yaml",
              f"samples/{d.name}/반의어.jsonl"):
        assert (out / f).is_file(), f
    from hfrepro.cards import check_dataset_card
    assert check_dataset_card(out / "README.md") == []
    status = (out / "status.json").read_text()
    r2 = run_cli(*args, cwd=tmp_path)
    assert r2.returncode == 0 and "already evaluated with this config" in r2.stdout
    assert json.loads((out / "status.json").read_text())["finished"] == json.loads(status)["finished"]


def test_two_processes_score_shares_and_gather_the_same_records(tiny, tmp_path):
    d, _, _ = tiny
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HFREPRO_THREADS": "1"}
    common = ["--model", str(d), "--tasks", str(write_task(tmp_path)), "--shots", "0,2", "--limit", "5",
              "--progress", "false"]
    one = subprocess.run([sys.executable, str(REPO / "recipes/fewshot.py"), *common, "--output_dir",
                          str(tmp_path / "one")], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    two = launch_two([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                      str(REPO / "recipes/accelerate/cpu_2proc.yaml"), str(REPO / "recipes/fewshot.py"), *common,
                      "--output_dir", str(tmp_path / "two")], fresh=tmp_path / "two", env=env, cwd=REPO, timeout=300)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    a, b = (load_results(tmp_path / x, samples=True)[0] for x in ("one", "two"))
    assert b.config["processes"] == 2 and a.config["processes"] == 1
    assert a.scores == b.scores and a.samples == b.samples


def test_fewshot_tasks_commands(tmp_path):
    r = run_cli("fewshot-tasks", "show", "uppercase", "--shots", "3", cwd=tmp_path)
    assert r.returncode == 0 and "Write each word in capital letters.\nray => RAY\nsun => SUN\n" in r.stdout
    r = run_cli("fewshot-tasks", "check", str(write_task(tmp_path)), "capital_mc", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.count("ok: ") == 2
    r = run_cli("fewshot-tasks", "path")
    assert Path(r.stdout.strip()) == TASKS_DIR


def test_stage_section_decides_the_claim(tiny, tmp_path):
    from hfrepro.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Decision, StageContext
    from hfrepro.reproduce import fewshot as stage
    from hfrepro.reproduce.plan import recipe_module

    assert [(r.recipe, r.folder, r.config) for r in stage.RUNS] == [("fewshot", "fewshot", None),
                                                                   ("fewshot", "chat", "fewshot/chat")]
    assert recipe_module("fewshot").cli
    _, model, tok = tiny
    res = evaluate(model, [str(write_task(tmp_path))], shots=[0, 2], tokenizer=tok, limit=4, progress=False)
    res.save(tmp_path / "stage" / "fewshot")
    ctx = StageContext(dir=tmp_path / "stage", root=tmp_path, budget="tiny", seed=0, threads=1)
    out = stage.section(ctx)
    d = out.claims["fewshot-beats-zeroshot"]
    assert isinstance(d, Decision) and d.statistic == "tasks where 2-shot beats 0-shot (of 1)"
    assert d.threshold == 0.5 and d.lo <= d.estimate <= d.hi and d.verdict in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
    g = out.metrics["gains"]["raw"][0]
    assert g["task"] == "caps" and g["n"] == 4 and g["lo"] <= g["gain"] <= g["hi"]
    assert "![accuracy vs shots](stage/fewshot/accuracy_vs_shots.png)" in out.markdown
    assert "A 2-shot prompt (`caps`" in out.markdown and "| caps | raw |" in out.markdown


def _results(per_task: dict[str, tuple[list[int], list[int]]], k0: int = 0, k1: int = 8):
    """FewShotResults with each task's right/wrong answers at k0 and k1 (the same examples)."""
    from hfrepro.fewshot.report import FewShotResults

    r = FewShotResults(model="m", config={"shots": [k0, k1], "prompt_format": "raw", "instruction": True})
    for t, (a, b) in per_task.items():
        r.tasks[t] = {"metric": "exact_match"}
        r.samples[t] = {k0: [{"exact_match": bool(v)} for v in a], k1: [{"exact_match": bool(v)} for v in b]}
    return r


def test_task_gains_by_hand():
    from hfrepro.reproduce import fewshot as stage

    (g,) = stage.task_gains(_results({"t": ([0, 0, 1, 1], [1, 1, 1, 0])}), 0, 8)
    assert (g["0-shot"], g["8-shot"], g["gain"], g["fixed"], g["broken"], g["n"]) == (0.5, 0.75, 0.25, 2, 1, 4)
    assert g["lo"] < 0 < g["hi"]                          # 4 examples: far from decided
    (g,) = stage.task_gains(_results({"t": ([0] * 40, [1] * 40)}), 0, 8)
    assert (g["gain"], g["lo"], g["hi"]) == (1.0, 1.0, 1.0)


def test_fewshot_rule_counts_only_tasks_whose_interval_clears_zero():
    from hfrepro.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
    from hfrepro.reproduce import fewshot as stage

    assert [stage.required_tasks(n) for n in (1, 2, 5, 6)] == [1, 1, 3, 3]
    clear = ([0] * 40, [1] * 20 + [0] * 20)           # +0.5: interval far above 0
    maybe = ([0] * 40, [1] * 2 + [0] * 38)            # +0.05: interval touches 0
    worse = ([1] * 40, [0] * 20 + [1] * 20)           # -0.5
    same = ([1] * 20 + [0] * 20, [1] * 20 + [0] * 20)  # identical answers: interval [0, 0]

    def verdict(kinds):
        gains = stage.task_gains(_results({f"t{i}": k for i, k in enumerate(kinds)}), 0, 8)
        return stage.decide_claim(gains, 0, 8)

    d = verdict([clear] * 3 + [worse] * 3)             # 3 of 6 clear 0: the rule's minimum
    assert d.verdict == REPRODUCED and (d.lo, d.estimate, d.hi, d.threshold) == (3, 3, 3, 2.5)
    assert "cleared 0: t0, t1, t2" in d.evidence
    d = verdict([clear] * 2 + [maybe] * 2 + [worse] * 2)   # 2 clear, 2 undecided: could be 4, could be 2
    assert d.verdict == INCONCLUSIVE and (d.lo, d.hi) == (2, 4)
    d = verdict([clear] * 2 + [worse] * 2 + [same] * 2)    # at most 2 of 6 can be better
    assert d.verdict == NOT_REPRODUCED and d.hi == 2
    d = verdict([maybe] * 6)                           # six small gains, none decided: not a reproduction
    assert d.verdict == INCONCLUSIVE and d.lo == 0
    assert stage.decide_claim([], 0, 8).verdict == INCONCLUSIVE
