"""At home in the Hugging Face ecosystem (issue 19): hfrepro's own models load with the Auto classes after
`import hfrepro`; metric modules load by name from anywhere; model cards carry what a Hub user needs, and the
card check catches each thing that can be missing or false."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from hfrepro import cards, metrics
from hfrepro.errors import UserError
from tests.conftest import PY, REPO

# --- Auto classes ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_models(tmp_path_factory) -> dict[str, Path]:
    """A tiny LSTM LM and a tiny GRU seq2seq with attention, saved as any Hub user would find them."""
    from hfrepro.lm.lstm import LSTMLM, LSTMConfig
    from hfrepro.seq2seq.rnn import GRUSeq2Seq, GRUSeq2SeqConfig

    root = tmp_path_factory.mktemp("own")
    LSTMLM(LSTMConfig(vocab_size=32, d_model=8)).save_pretrained(root / "lstm")
    GRUSeq2Seq(GRUSeq2SeqConfig(vocab_size=32, embed_dim=8, hidden_size=8, attention_dim=8)).save_pretrained(
        root / "gru")
    return {"lstm": root / "lstm", "gru": root / "gru"}


LOAD = """
import sys
{first}
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
{then}
print(type(AutoConfig.from_pretrained(sys.argv[1])).__name__)
print(type(AutoModelForCausalLM.from_pretrained(sys.argv[1])).__name__)
m = AutoModel.from_pretrained(sys.argv[2])
print(type(m).__name__, m.config.attention)
"""


@pytest.mark.parametrize("first,then", [("import hfrepro", ""), ("", "import hfrepro"),
                                        ("from transformers import PreTrainedModel", "import hfrepro")],
                         ids=["hfrepro-first", "transformers-first", "modeling-utils-first"])
def test_own_models_load_with_auto_classes_after_import_hfrepro(own_models, first, then):
    code = LOAD.format(first=first, then=then)
    r = subprocess.run([PY, "-c", code, str(own_models["lstm"]), str(own_models["gru"])], capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[:3] == ["LSTMConfig", "LSTMLM", "GRUSeq2Seq True"]
    assert not list(own_models["lstm"].glob("*.bin")) and (own_models["lstm"] / "model.safetensors").is_file()


def test_without_hfrepro_the_auto_classes_do_not_know_them(own_models, tmp_path):
    """The control: a plain transformers process refuses the folder (so the test above can fail)."""
    code = "import sys; from transformers import AutoModel; AutoModel.from_pretrained(sys.argv[1])"
    r = subprocess.run([PY, "-c", code, str(own_models["gru"])], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300, env={"PYTHONPATH": "", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and "hfrepro-gru-seq2seq" in r.stderr


def test_import_hfrepro_loads_neither_torch_nor_transformers():
    code = "import sys, hfrepro, hfrepro.cli; print(sorted({m.split('.')[0] for m in sys.modules} & " \
           "{'torch', 'transformers', 'datasets', 'gensim'}))"
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


# --- metric modules by name ---------------------------------------------------------------------------------

def test_metric_modules_load_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # evaluate.load("bleu") would look for ./bleu/bleu.py here, then the Hub
    assert metrics.available() == ["bleu", "perplexity"]
    bleu = metrics.load("bleu")
    r = bleu.compute(predictions=["the cat sat on the mat"], references=[["the cat sat on the mat"]])
    assert r["bleu"] == pytest.approx(100.0)
    assert metrics.path("hfrepro/bleu") == metrics.path("bleu")
    with pytest.raises(UserError, match="unknown hfrepro metric 'rouge'"):
        metrics.load("rouge")


# --- cards: what is inferred --------------------------------------------------------------------------------

@pytest.fixture
def fake_home(tmp_path, monkeypatch) -> Path:
    """An asset cache holding an 'embedded' model whose card names its Hub origin, as the real SmolLM2 does."""
    home = tmp_path / "home"
    d = home / "models" / "tiny-embedded"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / "README.md").write_text("---\nbase_model: Org/Tiny-Model\nlicense: apache-2.0\n---\n# tiny\n")
    monkeypatch.setenv("HFREPRO_HOME", str(home))
    return home


def test_embedded_names_map_to_hub_ids(fake_home):
    assert cards.hub_base_model("tiny-embedded") == "Org/Tiny-Model"
    assert cards.embedded_copy_of("Org/Tiny-Model") == fake_home / "models" / "tiny-embedded"
    assert cards.embedded_copy_of("Org/Other") is None and cards.hub_base_model("no-such-model") is None


def test_dataset_names_become_card_names():
    assert cards.dataset_ref("shakespeare") == "shakespeare"                  # data_cards/shakespeare.md
    assert cards.dataset_ref("word_class") == "finetune-word-class"           # the task's data card
    assert cards.dataset_ref("HuggingFaceH4/ultrachat_200k") == "HuggingFaceH4/ultrachat_200k"
    assert cards.dataset_ref("my_data.jsonl") is None and cards.dataset_ref("custom") is None


def test_adapter_records_the_hub_id_and_hfrepro_loads_it_on_the_embedded_copy(fake_home, tmp_path):
    from hfrepro import models

    d = tmp_path / "adapter"
    d.mkdir()
    embedded = fake_home / "models" / "tiny-embedded"
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(embedded),
                                                       "peft_type": "LORA", "task_type": "CAUSAL_LM"}))
    cards.write_model_card(d, title="LoRA", datasets=["word_class"], metrics={"heldout_accuracy": 0.5},
                           eval_split="test")
    assert json.loads((d / "adapter_config.json").read_text())["base_model_name_or_path"] == "Org/Tiny-Model"
    meta = ModelCard.load(d / "README.md").data.to_dict()
    assert meta["base_model"] == "Org/Tiny-Model" and meta["library_name"] == "peft"
    assert meta["license"] == "apache-2.0"  # inferred from the base's card
    assert meta["datasets"] == ["finetune-word-class"]
    assert models._adapter_base(str(d)) == str(embedded)  # offline: the weights it was trained on


# --- cards: the check -----------------------------------------------------------------------------------------

@pytest.fixture
def good_folder(tmp_path) -> Path:
    """A run folder as a recipe leaves it: a tiny GPT-2, its card, config.yaml and metrics.json."""
    from transformers import GPT2Config, GPT2LMHeadModel

    d = tmp_path / "run"
    GPT2LMHeadModel(GPT2Config(vocab_size=32, n_positions=16, n_embd=8, n_layer=1, n_head=2)).save_pretrained(d)
    (d / "metrics.json").write_text(json.dumps({"steps": 10, "test_perplexity": 41.5, "train_loss": 3.0}))
    (d / "config.yaml").write_text(yaml.safe_dump({"dataset": "shakespeare", "learning_rate": 0.001}))
    cards.write_model_card(d, title="tiny", license="apache-2.0", datasets=["shakespeare"], language=["en"],
                           metrics=json.loads((d / "metrics.json").read_text()), eval_metrics=["test_perplexity"],
                           eval_split="test")
    return d


def test_a_good_folder_passes(good_folder):
    assert cards.check_model_folder(good_folder) == []
    meta = ModelCard.load(good_folder / "README.md").data.to_dict()
    assert meta["pipeline_tag"] == "text-generation" and meta["library_name"] == "transformers"


def _rewrite(folder: Path, **kw) -> None:
    args = dict(title="tiny", license="apache-2.0", datasets=["shakespeare"], language=["en"],
                metrics={"test_perplexity": 41.5, "train_loss": 3.0, "steps": 10},
                eval_metrics=["test_perplexity"], eval_split="test")
    args.update(kw)
    cards.write_model_card(folder, **args)


BAD = {
    "no license": (dict(license=None), "no license"),
    "a local data file": (dict(datasets=["my_rows.jsonl"]), "no datasets"),
    "a training number in model-index": (dict(eval_metrics=["train_loss"]), "not a held-out one"),
    "bookkeeping in model-index": (dict(eval_metrics=["steps"]), "bookkeeping"),
    "the train split": (dict(eval_split="train"), "not held-out data"),
    "a number the run did not measure": (dict(metrics={"test_perplexity": 40.0}), "not a number the run measured"),
    "no model-index": (dict(eval_metrics=[]), "no model-index"),
    "a library it is not": (dict(library_name="gensim"), "library_name gensim"),
    "an unknown pipeline tag": (dict(pipeline_tag="text-magic"), "pipeline_tag"),
}


@pytest.mark.parametrize("case", BAD)
def test_the_check_catches(good_folder, case):
    kw, message = BAD[case]
    _rewrite(good_folder, **kw)
    problems = cards.check_model_folder(good_folder)
    assert any(message in p for p in problems), problems


def test_the_check_wants_the_base_the_run_started_from(good_folder, fake_home):
    (good_folder / "config.yaml").write_text(yaml.safe_dump({"model_name_or_path": "tiny-embedded"}))
    assert any("the run started from 'Org/Tiny-Model'" in p for p in cards.check_model_folder(good_folder))
    _rewrite(good_folder, base_model="tiny-embedded")
    assert cards.check_model_folder(good_folder) == []


def test_the_check_refuses_pickles_and_a_wrong_adapter_base(good_folder, tmp_path):
    (good_folder / "vectors.kv").write_bytes(b"\x80\x04")
    assert any("pickled" in p for p in cards.check_model_folder(good_folder))
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/somewhere/local"}))
    (d / "adapter_model.safetensors").write_bytes(b"")
    (d / "metrics.json").write_text(json.dumps({"heldout_accuracy": 0.5}))
    cards.write_model_card(d, title="a", license="mit", datasets=["shakespeare"], pipeline_tag="text-generation",
                           metrics={"heldout_accuracy": 0.5}, eval_split="test")
    assert any("both must be the Hub id" in p for p in cards.check_model_folder(d))


def test_check_cards_script_over_a_folder(good_folder, tmp_path):
    r = subprocess.run([PY, str(REPO / "scripts" / "check_cards.py"), str(good_folder.parent), "--json",
                        str(tmp_path / "rows.json")], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert rows[0]["loads with"] == "AutoModelForCausalLM -> GPT2LMHeadModel" and rows[0]["problems"] == "none"
    _rewrite(good_folder, license=None)
    r = subprocess.run([PY, str(REPO / "scripts" / "check_cards.py"), str(good_folder.parent), "--no-load"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1 and "no license" in r.stdout and "0 of 1 model folder(s) pass" in r.stdout


def test_card_loading_snippet_names_import_hfrepro_for_own_models(own_models):
    cards.write_model_card(own_models["lstm"], title="lstm", license="mit", datasets=["shakespeare"])
    text = (own_models["lstm"] / "README.md").read_text()
    meta = ModelCard.load(own_models["lstm"] / "README.md").data
    assert meta.pipeline_tag == "text-generation" and "import hfrepro" in text and "trust_remote_code" not in text



def test_the_check_reads_a_held_out_evaluation_kept_in_eval_json(good_folder):
    """A recipe may keep its held-out evaluation apart from metrics.json (RLHF's eval.json): its numbers count."""
    _rewrite(good_folder, metrics={"test_perplexity": 41.5, "heldout_reward": 2.5},
             eval_metrics=["heldout_reward"])
    assert any("not a number the run measured" in p for p in cards.check_model_folder(good_folder))
    (good_folder / "eval.json").write_text(json.dumps({"heldout_reward": 2.5}))
    assert cards.check_model_folder(good_folder) == []


def test_rlhf_policy_card_reports_its_held_out_evaluation_not_bookkeeping(good_folder):
    from hfrepro.rlhf.card import EVALUATION, write_card

    training = {"updates": 10, "resumed_from": 0, "generate_share": 0.12, "train_seconds": 5.0}
    (good_folder / "metrics.json").write_text(json.dumps(training))
    write_card(good_folder, "ppo", training, {}, "Org/Tiny-Model", "cmd")   # trained, not yet evaluated
    meta = ModelCard.load(good_folder / "README.md").data.to_dict()
    assert meta["datasets"] == ["qw-prefs"] and "model-index" not in meta
    evaluation = {"prompts": 48, "reward": 3.05, "reward_gain": 0.23, "kl": 0.30, "exact_match": 0.48,
                  "echo_rate": 0.19, "win_rate": 0.62, "eval_seconds": 24.7}
    (good_folder / "eval.json").write_text(json.dumps(evaluation))
    write_card(good_folder, "ppo", training, {}, "Org/Tiny-Model", "cmd", evaluation=evaluation)
    results = ModelCard.load(good_folder / "README.md").data.eval_results
    assert [r.metric_name for r in results] == list(EVALUATION)
    assert {r.dataset_split for r in results} == {"test"}
    assert cards.check_model_folder(good_folder) == []
