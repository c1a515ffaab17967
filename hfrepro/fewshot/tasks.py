"""Few-shot tasks as small YAML files plus a data file, in the spirit of lm-evaluation-harness task files.

A task file (all keys; the required ones are marked):

    name: unscramble_swap                       # required: how results and plots name the task
    description: two adjacent letters swapped   # for people; not shown to the model
    scoring: generate                           # generate (exact match) | multiple_choice (log-likelihood)
    instruction: "Unscramble the letters into an English word."   # first line(s) of every prompt ("" = none)
    template: "{scrambled} =>"                  # required: the question, Python str.format over a data row
    answer: "{word}"                            # required: the expected answer (generate) / the gold choice
    aliases: null                               # a column holding a list of other accepted answers
    choices: null                               # multiple_choice: a list column, or a list of templates
    target_delimiter: " "                       # between question and answer (lm-eval: target_delimiter)
    separator: "\\n"                            # after each demonstration (lm-eval: fewshot_delimiter)
    instruction_separator: "\\n"                # after the instruction
    stop: ["\\n"]                               # generation stops at the first of these strings
    max_new_tokens: 16                          # generation budget per answer
    answer_regex: null                          # keep the first match (group 1 if any) of the generation
    normalize: [strip, lower, punctuation, whitespace]   # applied to prediction and answer before comparing
    metric: exact_match                         # generate: exact_match | prefix_match;
                                                # multiple_choice: acc | acc_norm (first one is the headline)
    data: unscramble_swap.jsonl                 # required: a .jsonl/.json/.tsv/.csv file next to the YAML,
                                                # or {test: file, train: file} (one file per split)
    split_column: split                         # in a single file, the column naming each row's split
    test_split: test                            # the rows that are scored
    demo_split: train                           # the rows demonstrations are drawn from (never scored)

A single data file without a `split` column is split with a fixed seed: 20% of the rows (at least 1, at
most 64) become the demonstration pool, the rest are scored.

Normalisation steps, in this order: `nfkc` (Unicode NFKC), `strip` (outer whitespace), `lower`
(case-fold), `punctuation` (drop every Unicode punctuation character), `whitespace` (collapse runs of
whitespace to one space and strip). A prediction is right under `exact_match` when its normalised form
equals the normalised answer (or an alias); under `prefix_match` when it starts with it.
"""

from __future__ import annotations

import random
import re
import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfrepro.errors import UserError

TASKS_DIR = Path(__file__).resolve().parent / "tasks"

SCORINGS = ("generate", "multiple_choice")
METRICS = {"generate": ("exact_match", "prefix_match"), "multiple_choice": ("acc", "acc_norm")}
NORMALIZERS = ("nfkc", "strip", "lower", "punctuation", "whitespace")
DEFAULT_NORMALIZE = ["strip", "lower", "punctuation", "whitespace"]
DATA_SUFFIXES = (".jsonl", ".json", ".tsv", ".csv")

REQUIRED = ("name", "template", "answer", "data")
OPTIONAL: dict[str, Any] = {
    "description": "", "scoring": "generate", "instruction": "", "aliases": None, "choices": None,
    "target_delimiter": " ", "separator": "\n", "instruction_separator": "\n", "stop": ["\n"],
    "max_new_tokens": 16, "answer_regex": None, "normalize": None, "metric": None,
    "split_column": "split", "test_split": "test", "demo_split": "train", "tags": [],
}


@dataclass
class Task:
    """One task: how to turn a data row into a question and an answer, and how to score the model."""

    name: str
    template: str
    answer: str
    data: Any
    description: str = ""
    scoring: str = "generate"
    instruction: str = ""
    aliases: str | None = None
    choices: Any = None
    target_delimiter: str = " "
    separator: str = "\n"
    instruction_separator: str = "\n"
    stop: list[str] = field(default_factory=lambda: ["\n"])
    max_new_tokens: int = 16
    answer_regex: str | None = None
    normalize: list[str] = field(default_factory=lambda: list(DEFAULT_NORMALIZE))
    metric: list[str] = field(default_factory=list)
    split_column: str = "split"
    test_split: str = "test"
    demo_split: str = "train"
    tags: list[str] = field(default_factory=list)
    path: Path | None = None          # the YAML file (None for a task built in code)
    _splits: dict[str, list[dict]] | None = field(default=None, repr=False)

    # --- data ---------------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"task {self.name!r}"

    @property
    def primary_metric(self) -> str:
        return self.metric[0]

    def splits(self) -> dict[str, list[dict]]:
        """{split name: rows}, read once and checked (every template field exists in every row)."""
        if self._splits is None:
            self._splits = _read_splits(self)
            _check_rows(self, self._splits)
        return self._splits

    def test_rows(self, limit: int | None = None) -> list[dict]:
        rows = self.splits()[self.test_split]
        return rows[:limit] if limit else rows

    def demo_rows(self) -> list[dict]:
        return self.splits()[self.demo_split]

    # --- rendering ----------------------------------------------------------------------------------

    def question(self, row: dict) -> str:
        return _render(self.template, row, self, "template")

    def target(self, row: dict) -> str:
        return _render(self.answer, row, self, "answer")

    def accepted(self, row: dict) -> list[str]:
        out = [self.target(row)]
        if self.aliases:
            extra = row.get(self.aliases) or []
            out += [str(x) for x in (extra if isinstance(extra, list) else [extra])]
        return out

    def choice_list(self, row: dict) -> list[str]:
        if isinstance(self.choices, str):
            return [str(c) for c in row[self.choices]]
        return [_render(t, row, self, "choices") for t in self.choices]

    def gold_index(self, row: dict) -> int:
        choices, gold = self.choice_list(row), self.target(row)
        if gold not in choices:
            raise UserError(f"task {self.name!r}: the answer {gold!r} is not one of the choices {choices}",
                            where=self.where, fix="the `answer` template must render to one of the choices")
        return choices.index(gold)

    def demo_text(self, row: dict) -> str:
        """One demonstration: question, target delimiter, answer, separator."""
        return self.question(row) + self.target_delimiter + self.target(row) + self.separator

    def header(self) -> str:
        return self.instruction + self.instruction_separator if self.instruction else ""

    # --- scoring ------------------------------------------------------------------------------------

    def extract(self, generated: str) -> str:
        """The answer inside a generation: cut at the first stop string (as lm-eval's `until` does), then
        keep the first match of `answer_regex` (its group 1 if it has groups) when one is set."""
        text = generated
        for s in self.stop:
            if s and s in text:
                text = text[:text.index(s)]
        if self.answer_regex:
            m = re.search(self.answer_regex, text)
            text = (m.group(1) if m.groups() else m.group(0)) if m else ""
        return text

    def norm(self, s: str) -> str:
        return normalize(s, self.normalize)

    def is_correct(self, prediction: str, row: dict, metric: str | None = None) -> bool:
        metric = metric or self.primary_metric
        p = self.norm(prediction)
        golds = [self.norm(a) for a in self.accepted(row)]
        if metric == "prefix_match":
            return any(g and p.startswith(g) for g in golds)
        return p in golds

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in (*REQUIRED, *OPTIONAL)}
        d["data"] = self.data if not isinstance(self.data, Path) else str(self.data)
        return d


# --- normalisation ----------------------------------------------------------------------------------------

_PUNCT = "".join(c for c in string.punctuation)


def normalize(s: str, steps: list[str]) -> str:
    """Apply the named normalisation steps in the fixed order nfkc, strip, lower, punctuation, whitespace."""
    for step in NORMALIZERS:
        if step not in steps:
            continue
        if step == "nfkc":
            s = unicodedata.normalize("NFKC", s)
        elif step == "strip":
            s = s.strip()
        elif step == "lower":
            s = s.casefold()
        elif step == "punctuation":
            s = "".join(c for c in s if not unicodedata.category(c).startswith("P") and c not in _PUNCT)
        elif step == "whitespace":
            s = " ".join(s.split())
    return s


# --- loading ------------------------------------------------------------------------------------------

def builtin_task_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(TASKS_DIR.glob("*.yaml"))}


def builtin_tasks() -> list[str]:
    """Names of the tasks shipped with hfrepro (hfrepro/fewshot/tasks/*.yaml)."""
    return list(builtin_task_files())


def load_task(spec: "str | Path | Task | dict") -> Task:
    """A task from a built-in name, a YAML path, a dict of fields, or a Task (returned as is)."""
    if isinstance(spec, Task):
        return spec
    if isinstance(spec, dict):
        return task_from_dict(spec, path=None, base=Path.cwd())
    s = str(spec)
    files = builtin_task_files()
    if s in files:
        return load_task_file(files[s])
    p = Path(s).expanduser()
    if p.is_file():
        return load_task_file(p)
    if p.is_dir():
        raise UserError(f"task path is a folder: {p}", fix="point at a task .yaml file inside it")
    if s.endswith((".yaml", ".yml")) or "/" in s:
        raise UserError(f"task file not found: {s}", fix="check the path")
    raise UserError(f"unknown task {s!r}", fix=f"built-in tasks: {', '.join(files)}; or give a path to a task "
                                              "YAML file (see docs/fewshot.md, 'Adding a task')")


def load_tasks(specs: "str | list") -> list[Task]:
    """Tasks from a comma-separated string or a list; `all` means every built-in task."""
    if isinstance(specs, str):
        specs = [s.strip() for s in specs.split(",") if s.strip()]
    out: list[Task] = []
    for s in specs:
        if s == "all":
            out += [load_task(n) for n in builtin_tasks()]
        else:
            out.append(load_task(s))
    if not out:
        raise UserError("no tasks given", fix=f"pass --tasks with some of: {', '.join(builtin_tasks())}")
    names = [t.name for t in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"task name(s) given twice: {', '.join(dup)}", fix="each task name must be unique")
    return out


def load_task_file(path: str | Path) -> Task:
    import yaml

    from hfrepro.data import read_text

    path = Path(path)
    try:
        raw = yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"task file is not valid YAML: {getattr(e, 'problem', None) or e}", where=where) from None
    if not isinstance(raw, dict):
        raise UserError("a task file must be a YAML mapping of field names to values", where=str(path),
                        fix="see docs/fewshot.md, 'Adding a task', for an example")
    return task_from_dict(raw, path=path, base=path.parent)


def task_from_dict(raw: dict, path: Path | None, base: Path) -> Task:
    where = str(path) if path else "task definition"
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise UserError(f"unknown field(s) in task: {', '.join(unknown)}", where=where,
                        fix=f"allowed fields: {', '.join([*REQUIRED, *OPTIONAL])}")
    missing = [k for k in REQUIRED if raw.get(k) in (None, "")]
    if missing:
        raise UserError(f"task is missing required field(s): {', '.join(missing)}", where=where,
                        fix="every task needs name, template, answer and data (see docs/fewshot.md)")
    vals = {**{k: (list(v) if isinstance(v, list) else v) for k, v in OPTIONAL.items()}, **raw}
    for k in ("name", "template", "answer", "description", "instruction", "target_delimiter", "separator",
              "instruction_separator"):
        if not isinstance(vals[k], str):
            raise UserError(f"field {k!r} must be a string, got {type(vals[k]).__name__}: {vals[k]!r}",
                            where=where, fix="quote it in the YAML")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", vals["name"]):
        raise UserError(f"task name {vals['name']!r} may only hold letters, digits, _ . -", where=where)
    if vals["scoring"] not in SCORINGS:
        raise UserError(f"unknown scoring {vals['scoring']!r}", where=where, fix=f"use one of: {', '.join(SCORINGS)}")
    scoring = vals["scoring"]
    metric = vals["metric"] or METRICS[scoring][0]
    metric = [metric] if isinstance(metric, str) else list(metric)
    bad = [m for m in metric if m not in METRICS[scoring]]
    if bad:
        known = "; ".join(f"{s}: {', '.join(ms)}" for s, ms in METRICS.items())
        raise UserError(f"unknown metric {', '.join(map(repr, bad))} for scoring {scoring!r}", where=where,
                        fix=f"metrics by scoring: {known}")
    norm = DEFAULT_NORMALIZE if vals["normalize"] is None else vals["normalize"]
    norm = [norm] if isinstance(norm, str) else list(norm)
    badn = [n for n in norm if n not in NORMALIZERS]
    if badn:
        raise UserError(f"unknown normalisation step(s): {', '.join(badn)}", where=where,
                        fix=f"use some of: {', '.join(NORMALIZERS)}")
    stop = vals["stop"]
    stop = [stop] if isinstance(stop, str) else list(stop or [])
    if scoring == "multiple_choice":
        ch = vals["choices"]
        if not ch or not (isinstance(ch, str) or (isinstance(ch, list) and all(isinstance(c, str) for c in ch))):
            raise UserError("a multiple_choice task needs `choices`: the name of a column holding a list, or a "
                            "list of templates", where=where, fix='e.g. choices: choices  or  choices: ["{a}", "{b}"]')
    if not isinstance(vals["max_new_tokens"], int) or vals["max_new_tokens"] < 1:
        raise UserError(f"max_new_tokens must be a positive integer, got {vals['max_new_tokens']!r}", where=where)
    if vals["answer_regex"]:
        try:
            re.compile(vals["answer_regex"])
        except re.error as e:
            raise UserError(f"answer_regex is not a valid regular expression: {e}", where=where) from None
    for k in ("template", "answer"):
        _check_template(vals[k], k, where)
    if isinstance(vals["choices"], list):
        for c in vals["choices"]:
            _check_template(c, "choices", where)
    data = vals["data"]
    if isinstance(data, str):
        data = _data_path(data, base, where)
    elif isinstance(data, dict) and data and all(isinstance(v, str) for v in data.values()):
        data = {str(k): _data_path(v, base, where) for k, v in data.items()}
    else:
        raise UserError("`data` must be a file name, or a mapping {split: file}", where=where,
                        fix="e.g. data: mytask.jsonl   or   data: {train: train.jsonl, test: test.jsonl}")
    if vals["test_split"] == vals["demo_split"]:
        raise UserError(f"test_split and demo_split are both {vals['test_split']!r}", where=where,
                        fix="demonstrations must come from a split that is not scored")
    kw = {k: vals[k] for k in OPTIONAL if k not in ("normalize", "metric", "stop")}
    return Task(name=vals["name"], template=vals["template"], answer=vals["answer"], data=data,
                normalize=norm, metric=metric, stop=stop, path=path, **kw)


def _check_template(t: str, key: str, where: str) -> None:
    try:
        list(string.Formatter().parse(t))
    except ValueError as e:
        raise UserError(f"field {key!r} is not a valid template ({e}): {t!r}", where=where,
                        fix="fields are written {column}; a literal brace is written {{ or }}") from None


def _data_path(name: str, base: Path, where: str) -> Path:
    p = Path(name).expanduser()
    p = p if p.is_absolute() else base / p
    if p.suffix.lower() not in DATA_SUFFIXES:
        raise UserError(f"unsupported data file type {p.suffix!r}: {p.name}", where=where,
                        fix=f"use one of: {', '.join(DATA_SUFFIXES)}")
    if not p.is_file():
        raise UserError(f"data file not found: {p}", where=where, fix="paths are relative to the task YAML file")
    return p


def _read_file(p: Path) -> list[dict]:
    from hfrepro.data import read_jsonl, read_table
    rows = read_jsonl(p) if p.suffix.lower() in (".jsonl", ".json") else read_table(p)
    return rows


def _read_splits(task: Task) -> dict[str, list[dict]]:
    if isinstance(task.data, dict):
        splits = {k: _read_file(p) for k, p in task.data.items()}
        src = ", ".join(str(p) for p in task.data.values()) + f" (task file: {task.where})"
    else:
        rows = _read_file(task.data)
        src = f"{task.data} (task file: {task.where})"
        if not rows:
            raise UserError(f"task {task.name!r}: the data file has no rows", where=src,
                            fix="add examples, one JSON object per line (or one table row per line)")
        if any(task.split_column in r for r in rows):
            splits: dict[str, list[dict]] = {}
            for i, r in enumerate(rows, 1):
                if task.split_column not in r:
                    raise UserError(f"row {i} has no {task.split_column!r} value while other rows do",
                                    where=f"{task.data}:{i} (task file: {task.where})",
                                    fix="give every row a split, or none")
                splits.setdefault(str(r[task.split_column]), []).append(r)
        else:  # no split column: a fixed-seed split into a demonstration pool and the scored rows
            idx = list(range(len(rows)))
            random.Random(1234).shuffle(idx)
            n_demo = min(64, max(1, len(rows) // 5))
            if len(rows) < 2:
                raise UserError(f"task {task.name!r}: {len(rows)} row(s) cannot be split into demonstrations "
                                "and test examples", where=src, fix="add rows, or a split column")
            splits = {task.demo_split: [rows[i] for i in sorted(idx[:n_demo])],
                      task.test_split: [rows[i] for i in sorted(idx[n_demo:])]}
    for need, what in ((task.test_split, "scored"), (task.demo_split, "demonstration")):
        if not splits.get(need):
            have = ", ".join(f"{k} ({len(v)})" for k, v in splits.items()) or "none"
            raise UserError(f"task {task.name!r}: the {what} split {need!r} is empty or missing (splits found: "
                            f"{have})", where=src,
                            fix=f"add rows with {task.split_column}: {need}, or set "
                                f"{'test_split' if need == task.test_split else 'demo_split'} in the task YAML")
    return splits


def _fields(t: str) -> list[str]:
    return [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(t) if f]


def _check_rows(task: Task, splits: dict[str, list[dict]]) -> None:
    need = set(_fields(task.template)) | set(_fields(task.answer))
    if isinstance(task.choices, list):
        for c in task.choices:
            need |= set(_fields(c))
    elif isinstance(task.choices, str):
        need.add(task.choices)
    for split in (task.test_split, task.demo_split):
        for i, r in enumerate(splits[split], 1):
            miss = sorted(need - set(r))
            if miss:
                raise UserError(f"task {task.name!r}: row {i} of split {split!r} has no column(s) "
                                f"{', '.join(miss)} (it has: {', '.join(r)})", where=task.where,
                                fix="the templates may only use columns that every row has")
            if isinstance(task.choices, str) and not (isinstance(r[task.choices], list) and r[task.choices]):
                raise UserError(f"task {task.name!r}: row {i} of split {split!r}: column {task.choices!r} must "
                                "hold a non-empty list of choices", where=task.where,
                                fix="in JSONL write e.g. \"choices\": [\"Paris\", \"Rome\"]; in TSV/CSV use one "
                                    "column per choice and choices: [\"{a}\", \"{b}\"]")
            if task.scoring == "multiple_choice":
                task.gold_index(r)


def _render(t: str, row: dict, task: Task, key: str) -> str:
    try:
        return t.format(**row)
    except (KeyError, IndexError, AttributeError, ValueError) as e:
        raise UserError(f"task {task.name!r}: cannot fill the {key} template {t!r} from a row ({type(e).__name__}: "
                        f"{e}); the row has columns {', '.join(row)}", where=task.where) from None
