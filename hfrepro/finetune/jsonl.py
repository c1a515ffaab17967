"""`hfrepro finetune prepare-data -f data.jsonl`: check a fine-tuning JSONL file, report every problem with its
line number, and write the fixes it can make to `<name>_prepared.jsonl` (the input is never modified).

Three formats (TRL's standard ones), one per file:

    {"prompt": "Word: run\\nPart of speech:", "completion": " verb"}
    {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}]}
    {"text": "A paragraph to learn to continue (language modelling)."}

A plain-text (.txt) or CSV/TSV file is first converted to JSONL (the hosted tool's step 1, "make a jsonl file
from your txt file"), written next to it as `<name>.jsonl`, then checked like any JSONL file; problems are
reported at the source's own lines. The conversion rules are `convert`'s docstring.

Problem codes (each defect gets one message naming the line, and what was done about it):

| code | what | fix in the prepared file |
|---|---|---|
| encoding | the line is not UTF-8 | dropped |
| invalid-json | the line does not parse as JSON | dropped |
| not-object | the line is JSON but not an object | dropped |
| missing-field | no prompt/completion/messages, or a message without role/content | dropped |
| empty-field | an empty prompt, completion, message content or messages list | dropped |
| wrong-type | a field of the wrong type (a number where text belongs is converted) | converted or dropped |
| mixed-format | a chat example in a prompt/completion file or the reverse | dropped |
| bad-role | a role that is not system/user/assistant (case and common aliases are fixed) | normalised or dropped |
| role-order | system not first, two turns of one role in a row, no assistant turn, ending on a user | trailing |
|  | turn | user turn removed, else dropped |
| duplicate | the same example as an earlier line | dropped |
| too-long | more tokens than the model's context | dropped |
| long | more tokens than the training max_length (will be truncated) | kept (warning) |
| unknown-key | a field training ignores | removed (warning) |
| separator | prompt and completion would be glued together without a space | a space is put before the completion |
| whitespace | trailing whitespace at the end of a completion/answer | stripped |
| blank-line | an empty line | removed (warning) |
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_text

ROLES = ("system", "user", "assistant")
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant", "ai": "assistant",
                "chatgpt": "assistant"}
PC_KEYS = ("prompt", "completion")
CHAT_KEYS = ("messages",)
TEXT_KEYS = ("text",)
FORMATS = ("prompt_completion", "messages", "text")
WARNING_CODES = {"long", "unknown-key", "separator", "whitespace", "blank-line", "system-mix"}


@dataclass
class Problem:
    line: int            # 1-based line of the input file (0: the whole file)
    code: str
    message: str
    fix: str | None = None   # what the prepared file does about it; None: nothing (a note)
    where: str | None = None  # the source's own place, for a converted .txt/.csv ("guide.txt line 12")

    @property
    def error(self) -> bool:
        return self.code not in WARNING_CODES

    def render(self) -> str:
        where = self.where or (f"line {self.line}" if self.line else "file")
        return f"{where}: {self.message}" + (f" -> {self.fix}" if self.fix else "")


@dataclass
class Report:
    path: Path
    format: str | None = None          # "prompt_completion" | "messages"
    lines: int = 0
    problems: list[Problem] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)        # the prepared examples
    row_lines: list[int] = field(default_factory=list)    # their input line numbers
    token_counts: list[int] = field(default_factory=list)
    dropped: int = 0
    changed: int = 0
    tokenizer_name: str | None = None
    context: int | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.error]

    def add(self, line: int, code: str, message: str, fix: str | None = None) -> None:
        self.problems.append(Problem(line, code, message, fix))


# --- reading --------------------------------------------------------------------------------------------

def _lines(path: Path) -> list[tuple[int, bytes]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"file not found: {path}", fix="check the path given to -f") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}", where=str(path)) from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    parts = raw.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [(i, p.rstrip(b"\r")) for i, p in enumerate(parts, 1)]


def _kind_of(obj: dict) -> str | None:
    if "messages" in obj:
        return "messages"
    if "prompt" in obj or "completion" in obj:
        return "prompt_completion"
    if "text" in obj:
        return "text"
    return None


def _short(v: Any, n: int = 40) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= n else s[: n - 3] + "..."


# --- plain text and CSV -> JSONL (the hosted workflow's step 1) ----------------------------------------

CONVERTIBLE = (".txt", ".csv", ".tsv")
PAIR_LABELS = {"prompt": "prompt", "completion": "completion", "q": "prompt", "a": "completion",
               "question": "prompt", "answer": "completion"}
CHAT_LABELS = {"system": "system", "user": "user", "assistant": "assistant"}
CSV_PAIRS = (("prompt", "completion"), ("question", "answer"), ("input", "output"), ("instruction", "response"))
HEADING_CHARS = 60


@dataclass
class Conversion:
    source: Path
    rows: list[dict] = field(default_factory=list)
    places: list[str] = field(default_factory=list)    # where each row came from ("guide.txt lines 3-5")
    rules: dict[str, int] = field(default_factory=dict)  # rule -> rows it made
    notes: list[str] = field(default_factory=list)

    def add(self, row: dict, place: str, rule: str) -> None:
        self.rows.append(row)
        self.places.append(place)
        self.rules[rule] = self.rules.get(rule, 0) + 1


def _labelled(line: str, labels: dict[str, str]) -> tuple[str, str] | None:
    head, sep, rest = line.partition(":")
    key = head.strip().lower()
    return (labels[key], rest.strip()) if sep and key in labels and len(head) <= 12 else None


def _labelled_block(lines: list[str], labels: dict[str, str]) -> list[tuple[str, str]] | None:
    """[(label, text)] when the block's first line carries one of `labels` (later unlabelled lines continue
    the value above them); None otherwise."""
    if not lines or _labelled(lines[0], labels) is None:
        return None
    parts: list[tuple[str, str]] = []
    for line in lines:
        lab = _labelled(line, labels)
        if lab:
            parts.append(lab)
        else:
            parts[-1] = (parts[-1][0], (parts[-1][1] + "\n" + line.strip()).strip())
    return parts


def _pair(prompt: str, completion: str) -> dict:
    """A prompt/completion row; the completion starts with a space (the hosted tool's convention), so prompt and
    completion never run together ("...Studio?A tool.")."""
    completion = completion.strip()
    return {"prompt": prompt.strip(), "completion": " " + completion if completion else ""}


def _is_heading(lines: list[str]) -> bool:
    """A block's first line is a heading (not the first line of a hard-wrapped paragraph): a question, or a
    short line without closing punctuation, clearly shorter than the longest line below it."""
    if len(lines) < 2:
        return False
    first, below = lines[0].strip(), max(len(x.strip()) for x in lines[1:])
    if first.endswith("?") and len(first) <= 2 * HEADING_CHARS:
        return True
    return len(first) <= HEADING_CHARS and not first.endswith((".", ",", ";")) and len(first) < 0.75 * below


def _text_row(lines: list[str]) -> tuple[dict, str]:
    pairs = _labelled_block(lines, PAIR_LABELS)
    if pairs is not None:
        d = dict(pairs)
        return _pair(d.get("prompt", ""), d.get("completion", "")), "labelled prompt/completion"
    chat = _labelled_block(lines, CHAT_LABELS)
    if chat is not None:
        return {"messages": [{"role": r, "content": c} for r, c in chat]}, "labelled chat turns"
    if _is_heading(lines):
        return _pair(lines[0], " ".join(x.strip() for x in lines[1:])), "heading -> paragraph"
    return {"text": " ".join(x.strip() for x in lines)}, "paragraph -> text"


def convert_text(path: Path) -> Conversion:
    """A .txt file, block by block (blocks are separated by blank lines), first rule that applies (a completion
    gets a leading space, the hosted tool's convention):

    1. lines labelled `Prompt:`/`Completion:`, `Q:`/`A:` or `Question:`/`Answer:` -> {"prompt", "completion"};
    2. lines labelled `User:`/`Assistant:` (and `System:`) -> {"messages": [...]}, as many turns as written;
    3. a heading over more lines -> {"prompt": heading, "completion": the lines below it, joined}. A heading is
       a question (ends with ?), or a short line (at most 60 characters, not ending in . , ;) clearly shorter
       (< 3/4) than the longest line below it - so the first line of a hard-wrapped paragraph is not one;
    4. any other block -> {"text": the block, joined} (language modelling on your document).
    A line that continues a labelled one (no label of its own) belongs to the label above it.
    """
    conv = Conversion(path)
    block: list[tuple[int, str]] = []
    for n, line in enumerate(_decoded(path).splitlines() + [""], 1):
        if line.strip():
            block.append((n, line))
            continue
        if block:
            row, rule = _text_row([x for _, x in block])
            a, b = block[0][0], block[-1][0]
            conv.add(row, f"{path.name} line {a}" if a == b else f"{path.name} lines {a}-{b}", rule)
            block = []
    return conv


def convert_csv(path: Path) -> Conversion:
    """A CSV (or .tsv) file with a header row: `prompt,completion` (or question/answer, input/output,
    instruction/response; any case) -> {"prompt", "completion"}; a `text` column -> {"text"}. Other columns
    are left out (said so)."""
    import csv

    conv = Conversion(path)
    reader = csv.reader(_decoded(path).splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
    header = [h.strip().lower() for h in next(reader, [])]
    cols = next(([header.index(a), header.index(b)] for a, b in CSV_PAIRS if a in header and b in header), None)
    if cols is None and "text" in header:
        cols = [header.index("text")]
    if cols is None:
        raise UserError(f"no usable columns in the header of {path.name}: {', '.join(header) or '(empty)'}",
                        where=str(path), fix="a header row with prompt,completion (or question,answer; input,output; "
                                             "instruction,response) or a text column")
    unused = [h for i, h in enumerate(header) if i not in cols and h]
    if unused:
        conv.notes.append(f"column(s) left out: {', '.join(unused)}")
    for n, rec in enumerate(reader, 2):
        if not any(x.strip() for x in rec):
            continue
        vals = [rec[i] if i < len(rec) else "" for i in cols]
        row = _pair(vals[0], vals[1]) if len(cols) == 2 else {"text": vals[0]}
        conv.add(row, f"{path.name} row {n}", "columns -> " + ("prompt/completion" if len(cols) == 2 else "text"))
    return conv


def _decoded(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"file not found: {path}", fix="check the path given to -f") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise UserError(f"{path.name} is not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line})", where=str(path),
                        fix="save the file as UTF-8 (e.g. `iconv -f cp949 -t utf-8 in.txt > out.txt`)") from None


def convert(path: str | Path) -> Conversion:
    """A .txt, .csv or .tsv file as JSONL rows (rules: `convert_text`, `convert_csv`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CONVERTIBLE:
        raise UserError(f"cannot convert {path.name}: not a .txt, .csv or .tsv file", where=str(path))
    conv = convert_csv(path) if suffix in (".csv", ".tsv") else convert_text(path)
    if not conv.rows:
        raise UserError(f"{path.name} holds no text to convert", where=str(path))
    return conv


def write_converted(conv: Conversion, out: str | Path, overwrite: bool = False) -> Path:
    """Write the converted rows as JSONL; an existing different file is kept unless `overwrite`."""
    out = Path(out)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in conv.rows)
    if out.exists() and not overwrite and out.read_text(encoding="utf-8", errors="replace") != text:
        raise UserError(f"{out} exists and is not this conversion of {conv.source.name}", where=str(out),
                        fix="move it away, or name another file with --jsonl")
    return atomic_write_text(out, text)


def locate(rep: Report, conv: Conversion) -> None:
    """Report problems of a converted file at the source's own lines (the JSONL's line n is row n)."""
    for p in rep.problems:
        if 1 <= p.line <= len(conv.places):
            p.where = conv.places[p.line - 1]
        if p.code == "duplicate" and p.message.startswith("duplicate of line "):
            n = int(p.message.rsplit(" ", 1)[1])
            p.message = f"duplicate of {conv.places[n - 1]}" if 1 <= n <= len(conv.places) else p.message


def render_conversion(conv: Conversion, out: Path) -> str:
    kind = "CSV" if conv.source.suffix.lower() in (".csv", ".tsv") else "plain text"
    rules = ", ".join(f"{n} by {r}" for r, n in conv.rules.items())
    lines = [f"Converting {conv.source} ({kind}) to JSONL ...", f"- {len(conv.rows):,} example(s): {rules}"]
    lines += [f"- {n}" for n in conv.notes]
    lines.append(f"- wrote {out}")
    return "\n".join(lines)


# --- checking one example -------------------------------------------------------------------------------

def _check_text(rep: Report, ln: int, name: str, v: Any) -> tuple[str | None, bool]:
    """(text or None if the example must be dropped, changed?)"""
    if v is None:
        rep.add(ln, "empty-field", f"{name} is null", "dropped")
        return None, False
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        hint = " (for chat data use a \"messages\" list)" if isinstance(v, list) else ""
        rep.add(ln, "wrong-type", f"{name} is a JSON {_jtype(v)}, expected a string{hint}", "dropped")
        return None, False
    if not isinstance(v, str):
        rep.add(ln, "wrong-type", f"{name} is a number ({_short(v)}), expected a string",
                f"converted to \"{v}\"")
        return str(v), True
    if not v.strip():
        rep.add(ln, "empty-field", f"{name} is empty", "dropped")
        return None, False
    return v, False


def _jtype(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "number")


def _check_pc(rep: Report, ln: int, obj: dict) -> tuple[dict | None, bool]:
    missing = [k for k in PC_KEYS if k not in obj]
    if missing:
        rep.add(ln, "missing-field", f"no \"{missing[0]}\" field (has: {', '.join(obj) or 'nothing'})", "dropped")
        return None, False
    changed = False
    out = {}
    for k in PC_KEYS:
        t, ch = _check_text(rep, ln, f"\"{k}\"", obj[k])
        if t is None:
            return None, False
        out[k] = t
        changed |= ch
    extra = [k for k in obj if k not in PC_KEYS]
    if extra:
        rep.add(ln, "unknown-key", f"field(s) {', '.join(repr(k) for k in extra)} are not used by training",
                "removed")
        changed = True
    c = out["completion"]
    if c != c.rstrip():
        rep.add(ln, "whitespace", "the completion ends with whitespace", "stripped")
        out["completion"] = c = c.rstrip()
        changed = True
    p = out["prompt"]
    if p and c and not p[-1].isspace() and not c[0].isspace() and p[-1].isalnum() and c[0].isalnum():
        rep.add(ln, "separator", f"prompt and completion would be glued together (\"...{p[-12:]}{c[:12]}...\")",
                "a space put before the completion")
        out["completion"] = " " + c
        changed = True
    return out, changed


def _check_messages(rep: Report, ln: int, obj: dict) -> tuple[dict | None, bool]:
    msgs = obj["messages"]
    changed = False
    if not isinstance(msgs, list):
        rep.add(ln, "wrong-type", f"\"messages\" is a JSON {_jtype(msgs)}, expected an array of "
                                  "{\"role\": ..., \"content\": ...} objects", "dropped")
        return None, False
    if not msgs:
        rep.add(ln, "empty-field", "\"messages\" is an empty list", "dropped")
        return None, False
    extra = [k for k in obj if k != "messages"]
    if extra:
        rep.add(ln, "unknown-key", f"field(s) {', '.join(repr(k) for k in extra)} are not used by training",
                "removed")
        changed = True
    out = []
    for i, m in enumerate(msgs, 1):
        if not isinstance(m, dict):
            rep.add(ln, "wrong-type", f"message {i} is a JSON {_jtype(m)}, expected an object with role and "
                                      "content", "dropped")
            return None, False
        for key in ("role", "content"):
            if key not in m:
                rep.add(ln, "missing-field", f"message {i} has no \"{key}\"", "dropped")
                return None, False
        role = m["role"]
        if not isinstance(role, str):
            rep.add(ln, "wrong-type", f"message {i}: role is a JSON {_jtype(role)}, expected a string", "dropped")
            return None, False
        norm = role.strip().lower()
        norm = ROLE_ALIASES.get(norm, norm)
        if norm not in ROLES:
            rep.add(ln, "bad-role", f"message {i} has role {role!r}; roles are system, user, assistant", "dropped")
            return None, False
        if norm != role:
            rep.add(ln, "bad-role", f"message {i} has role {role!r}", f"normalised to {norm!r}")
            changed = True
        content, ch = _check_text(rep, ln, f"message {i} ({norm}) content", m["content"])
        if content is None:
            return None, False
        changed |= ch
        extra = [k for k in m if k not in ("role", "content")]
        if extra:
            rep.add(ln, "unknown-key", f"message {i}: field(s) {', '.join(repr(k) for k in extra)} are not used "
                                       "by training", "removed")
            changed = True
        if norm == "assistant" and content != content.rstrip():
            rep.add(ln, "whitespace", f"message {i} (assistant) ends with whitespace", "stripped")
            content, changed = content.rstrip(), True
        out.append({"role": norm, "content": content})
    # order: [system] user assistant user assistant ... (ending with assistant)
    roles = [m["role"] for m in out]
    for i, r in enumerate(roles[1:], 2):
        if r == "system":
            rep.add(ln, "role-order", f"message {i} is a system message; only the first message may be system",
                    "dropped")
            return None, False
    body = roles[1:] if roles[0] == "system" else roles
    off = 2 if roles[0] == "system" else 1
    if not body:
        rep.add(ln, "role-order", "only a system message: no user or assistant turn", "dropped")
        return None, False
    if body[0] != "user":
        rep.add(ln, "role-order", f"message {off} is {body[0]}; the conversation must start with a user turn "
                                  "(after an optional system message)", "dropped")
        return None, False
    for j in range(1, len(body)):
        if body[j] == body[j - 1]:
            rep.add(ln, "role-order", f"messages {off + j - 1} and {off + j} are both {body[j]} turns; "
                                      "user and assistant must alternate", "dropped")
            return None, False
    if body[-1] != "assistant":
        if "assistant" not in body:
            rep.add(ln, "role-order", "no assistant message: nothing to learn from", "dropped")
            return None, False
        rep.add(ln, "role-order", f"the conversation ends with a user turn (message {len(roles)})",
                "trailing user turn removed")
        out = out[:-1]
        changed = True
    return {"messages": out}, changed


_FORMAT_WORDS = {"messages": ("chat example (\"messages\")", "chat"),
                 "prompt_completion": ("prompt/completion example", "prompt/completion"),
                 "text": ("plain-text example (\"text\")", "plain-text")}


def _check_text_row(rep: Report, ln: int, obj: dict) -> tuple[dict | None, bool]:
    t, changed = _check_text(rep, ln, "\"text\"", obj["text"])
    if t is None:
        return None, False
    extra = [k for k in obj if k not in TEXT_KEYS]
    if extra:
        rep.add(ln, "unknown-key", f"field(s) {', '.join(repr(k) for k in extra)} are not used by training",
                "removed")
        changed = True
    return {"text": t}, changed


def _check_rows(rep: Report, parsed: list[tuple[int, dict]]) -> None:
    """Check each parsed object against the file's format (the majority one); keep the rows that pass."""
    kinds = [_kind_of(o) for _, o in parsed]
    counts = {k: kinds.count(k) for k in FORMATS}
    if any(counts.values()):
        rep.format = max(FORMATS, key=lambda k: (counts[k], -FORMATS.index(k)))
    check = {"messages": _check_messages, "prompt_completion": _check_pc, "text": _check_text_row}
    seen: dict[str, int] = {}
    for (ln, obj), kind in zip(parsed, kinds):
        if kind is None:
            rep.add(ln, "missing-field", f"no \"prompt\"/\"completion\", \"messages\" or \"text\" field "
                                         f"(has: {', '.join(obj) or 'nothing'})", "dropped")
            continue
        if kind != rep.format:
            rep.add(ln, "mixed-format", f"{_FORMAT_WORDS[kind][0]} in a file of {_FORMAT_WORDS[rep.format][1]} "
                    f"examples ({counts[rep.format]} of {len(parsed)}); one format per file", "dropped")
            continue
        row, changed = check[kind](rep, ln, obj)
        if row is None:
            continue
        key = json.dumps(row, sort_keys=True, ensure_ascii=False)
        if key in seen:
            rep.add(ln, "duplicate", f"duplicate of line {seen[key]}", "dropped")
            continue
        seen[key] = ln
        rep.rows.append(row)
        rep.row_lines.append(ln)
        rep.changed += int(changed)


# --- the whole file -------------------------------------------------------------------------------------

def check_file(path: str | Path, tokenizer=None, context: int | None = None, max_length: int | None = None,
               tokenizer_name: str | None = None) -> Report:
    """Check every line; returns a Report with the problems and the prepared rows (fixes applied).

    tokenizer/context: count tokens per example (chat template for chat data) and drop those longer than
    `context`; warn about those longer than `max_length` (training truncates them).
    """
    path = Path(path)
    rep = Report(path=path, tokenizer_name=tokenizer_name, context=context)
    parsed: list[tuple[int, dict]] = []
    lines = _lines(path)
    rep.lines = len(lines)
    for ln, raw in lines:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            rep.add(ln, "encoding", f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})",
                    "dropped")
            continue
        if not text.strip():
            rep.add(ln, "blank-line", "empty line", "removed")
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            at = "column" if e.msg.endswith(" at") else "at column"   # "Unterminated string starting at"
            rep.add(ln, "invalid-json", f"invalid JSON: {e.msg} {at} {e.colno}", "dropped")
            continue
        if not isinstance(obj, dict):
            rep.add(ln, "not-object", f"a JSON {_jtype(obj)}, expected an object like "
                                      "{\"prompt\": ..., \"completion\": ...} or {\"messages\": [...]}", "dropped")
            continue
        parsed.append((ln, obj))

    _check_rows(rep, parsed)
    if tokenizer is not None and rep.rows:
        _check_lengths(rep, tokenizer, context, max_length)
    if rep.format == "messages" and rep.rows:
        with_sys = sum(1 for r in rep.rows if r["messages"][0]["role"] == "system")
        if 0 < with_sys < len(rep.rows):
            rep.add(0, "system-mix", f"{with_sys} of {len(rep.rows)} conversations have a system message and the "
                                     "others do not (the chat template may add a default one to those)")
    rep.dropped = sum(1 for p in rep.problems if p.fix == "dropped")
    return rep


def _check_lengths(rep: Report, tok, context: int | None, max_length: int | None) -> None:
    keep_rows, keep_lines, counts = [], [], []
    for row, ln in zip(rep.rows, rep.row_lines):
        n = example_tokens(tok, row)
        if context and n > context:
            rep.add(ln, "too-long", f"{n:,} tokens, longer than the model's context of {context:,}", "dropped")
            continue
        if max_length and n > max_length:
            rep.add(ln, "long", f"{n:,} tokens, longer than the training max_length {max_length:,}: "
                                "training will truncate it", None)
        keep_rows.append(row)
        keep_lines.append(ln)
        counts.append(n)
    rep.rows, rep.row_lines, rep.token_counts = keep_rows, keep_lines, counts


def example_tokens(tok, row: dict) -> int:
    if "messages" in row:
        return len(tok.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"])
    if "text" in row:
        return len(tok(row["text"])["input_ids"]) + 1  # + the eos SFTTrainer appends
    return len(tok(row["prompt"] + row["completion"])["input_ids"]) + 1  # + the eos SFTTrainer appends


def write_prepared(rep: Report, out: str | Path) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rep.rows)
    return atomic_write_text(out, text)


def default_output(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(f"{p.stem}_prepared.jsonl")


def render(rep: Report, out: Path | None) -> str:
    fmt = {"messages": "chat (\"messages\")", "prompt_completion": "prompt/completion",
           "text": "plain text (\"text\", language modelling)", None: "unknown"}[rep.format]
    lines = [f"Analyzing {rep.path} ...",
             f"- {rep.lines:,} line(s), format: {fmt}"]
    if rep.problems:
        n_drop = sum(1 for p in rep.problems if p.fix == "dropped")
        n_note = sum(1 for p in rep.problems if p.fix is None)
        parts = [f"{len(rep.problems) - n_drop - n_note} fixed", f"{n_drop} example(s) dropped"]
        if n_note:
            parts.append(f"{n_note} note(s), nothing changed")
        lines.append(f"- {len(rep.problems)} problem(s): {', '.join(parts)}")
        for p in sorted(rep.problems, key=lambda p: (p.line, p.code)):
            lines.append(f"  {p.render()}")
    else:
        lines.append("- no problems found")
    if rep.token_counts:
        c = rep.token_counts
        lines.append(f"- tokens per example ({rep.tokenizer_name or 'tokenizer'}): min {min(c)}, "
                     f"mean {statistics.mean(c):.1f}, max {max(c)}; {sum(c):,} in all"
                     + (f" (context {rep.context:,})" if rep.context else ""))
    if len(rep.rows) < 10 and rep.rows:
        lines.append(f"- only {len(rep.rows)} example(s): fine-tuning usually wants at least a few dozen")
    if out is not None:
        what = []
        if rep.dropped:
            what.append(f"{rep.dropped} dropped")
        if rep.changed:
            what.append(f"{rep.changed} changed")
        lines.append(f"- wrote {out}: {len(rep.rows):,} example(s)" + (f" ({', '.join(what)})" if what else
                                                                        " (unchanged)")
                     + f". The input file {rep.path} was not modified.")
    return "\n".join(lines)


def load_examples(path: str | Path, tokenizer=None, context: int | None = None) -> list[dict]:
    """The examples of a JSONL file for training; any error-level problem is a UserError naming its line."""
    rep = check_file(path, tokenizer=tokenizer, context=context)
    errs = rep.errors
    if errs:
        shown = "; ".join(p.render().split(" -> ")[0] for p in errs[:3])
        more = f" (and {len(errs) - 3} more)" if len(errs) > 3 else ""
        raise UserError(f"{len(errs)} problem(s) in the training file: {shown}{more}", where=str(path),
                        fix=f"run `hfrepro finetune prepare-data -f {path}` and train on the prepared file it writes")
    if not rep.rows:
        raise UserError("the training file holds no examples", where=str(path),
                        fix="one JSON object per line: {\"prompt\": ..., \"completion\": ...} or {\"messages\": [...]}")
    return rep.rows
