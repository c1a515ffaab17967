"""Few-shot tasks in lm-evaluation-harness's task schema: the YAML files lm-eval reads, read by hfrepro too.

hfrepro's own tasks (hfrepro/fewshot/tasks/*.yaml) run unchanged in lm-eval (`lm_eval --include_path
hfrepro/fewshot/tasks --tasks uppercase`), and an lm-eval task YAML over local data runs unchanged in hfrepro
(`hfrepro fewshot --tasks path/to/task.yaml`). The keys (lm-eval 0.4's `TaskConfig`):

    task: uppercase                          # the name (any Unicode: `task: 반의어`)
    dataset_path: json                       # datasets' json/csv/... builder over local files, as lm-eval
    dataset_kwargs: {data_files: {test: test.jsonl, train: train.jsonl}}   # relative: to the working dir
    custom_dataset: !function hfrepro.fewshot.tasks.local_jsonl   # hfrepro's tasks: files relative to the
                                             # YAML, rows split by a column (dataset_kwargs: data_files, split_column)
    test_split: test                         # the scored rows (else validation_split)
    training_split: train                    # the demonstration pool when there is no fewshot_split
    fewshot_split: null                      # the pool lm-eval's samplers draw from
    fewshot_config: {sampler: first_n, samples: [...]}   # fixed demonstrations, in order (or sampler:
                                             # default = lm-eval's seeded draw per test example)
    output_type: generate_until              # | multiple_choice | loglikelihood
    description: "Write each word in capital letters.\\n"   # before the demonstrations (Jinja)
    doc_to_text: "{{word}} =>"               # the question: Jinja over a row, or a column name
    doc_to_target: "{{upper}}"               # the answer; a list = several accepted; multiple choice: a
                                             # choice or its index
    doc_to_choice: choices                   # multiple_choice: a column, a Jinja list, or a YAML list
    target_delimiter: " "                    # between question and answer
    fewshot_delimiter: "\\n"                 # after each demonstration
    generation_kwargs: {until: ["\\n"], max_gen_toks: 8, do_sample: false}
    metric_list: [{metric: exact_match, aggregation: mean, higher_is_better: true, ignore_case: true,
                   regexes_to_ignore: ["^\\\\s+|\\\\s+$"]}]
    filter_list: [{name: answer, filter: [{function: regex, regex_pattern: "..."}, {function: take_first}]}]
    num_fewshot: 8                           # lm-eval's default k for this task
    include: _base.yaml                      # variants: the included file's keys, overridden by this file's
    metadata: {version: 1.0, summary: "..."} # summary: one line for people (`hfrepro fewshot-tasks list`)

Templates are Jinja rendered exactly as lm-eval renders them (StrictUndefined, trailing newline kept, the
`regex_replace` filter). hfrepro refuses, naming the key, what its evaluator does not implement
(process_results, promptsource prompts, multiple-input tasks, sampling, several filter pipelines): run those in
lm-eval. A `!function` is resolved as lm-eval resolves it: a Python file next to the YAML, else an importable
module; like lm-eval, that runs the code it names.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hfrepro.data import read_jsonl
from hfrepro.errors import UserError

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
# Every stage may ship task files in hfrepro/<stage>/tasks/ (stage 7: word_class); all are found by name.
SHIPPED_TASK_DIRS = sorted(p for p in TASKS_DIR.parents[1].glob("*/tasks") if p.is_dir())

OUTPUT_TYPES = ("generate_until", "multiple_choice", "loglikelihood")
METRICS = {"generate_until": ("exact_match",), "multiple_choice": ("acc", "acc_norm", "acc_bytes"),
           "loglikelihood": ("perplexity", "acc")}
DEFAULT_METRICS = {"generate_until": ["exact_match"], "multiple_choice": ["acc", "acc_norm"],
                   "loglikelihood": ["perplexity", "acc"]}
EXACT_MATCH_OPTIONS = ("regexes_to_ignore", "ignore_case", "ignore_punctuation", "ignore_numbers")
FILTERS = ("take_first", "regex", "remove_whitespace", "lowercase", "uppercase", "map")
SAMPLERS = ("default", "first_n")
DEFAULT_MAX_GEN_TOKS = 256            # lm-eval's HFLM default

# lm-eval TaskConfig keys hfrepro reads, ignores (they change nothing here), or refuses (not implemented).
READ = {"task", "dataset_path", "dataset_name", "dataset_kwargs", "custom_dataset", "training_split",
        "validation_split", "test_split", "fewshot_split", "process_docs", "doc_to_text", "doc_to_target",
        "doc_to_choice", "description", "target_delimiter", "fewshot_delimiter", "fewshot_config", "num_fewshot",
        "metric_list", "output_type", "generation_kwargs", "filter_list", "metadata", "repeats", "unsafe_code"}
IGNORED = {"task_alias", "tag", "should_decontaminate", "doc_to_decontamination_query"}
REFUSED = {"process_results": "a Python scoring function", "use_prompt": "promptsource prompts",
           "doc_to_image": "images", "doc_to_audio": "audio", "gen_prefix": "an answer prefix (gen_prefix)",
           "class": "a Python task class", "group": "a group of tasks (list its tasks instead)"}


# --- YAML: lm-eval's loader (includes, !function) ------------------------------------------------------

@dataclass(frozen=True)
class Function:
    """A `!function module.name` reference, resolved as lm-eval resolves it (file next to the YAML first)."""
    spec: str
    base: Path

    def resolve(self) -> Any:
        return _resolve_function(self.spec, self.base)


@functools.cache
def _resolve_function(qual: str, base: Path) -> Any:
    mod, _, name = qual.rpartition(".")
    if not mod:
        raise UserError(f"`!function {qual}` names no module", where=str(base),
                        fix="write !function module.name, e.g. !function utils.process_docs")
    local = (base / f"{mod.replace('.', '/')}.py").resolve()
    try:
        if local.is_file():
            spec = importlib.util.spec_from_file_location(f"hfrepro_task_code.{local.stem}", local)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod)
        return getattr(module, name)
    except (ImportError, AttributeError) as e:
        raise UserError(f"cannot resolve `!function {qual}`: {e}", where=str(base),
                        fix="put the module next to the task YAML, or make it importable") from None


def _loader(base: Path) -> type:
    class Loader(yaml.SafeLoader):
        pass
    Loader.add_constructor("!function", lambda loader, node: Function(loader.construct_scalar(node), base))
    return Loader


def read_task_yaml(path: str | Path, _seen: frozenset = frozenset()) -> dict:
    """A task YAML as a dict, its `include:` files merged in first (relative to it; its own keys win)."""
    path = Path(path).expanduser().resolve()
    if path in _seen:
        raise UserError(f"include cycle at {path}", where=str(path))
    try:
        cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader(path.parent))  # noqa: S506 (SafeLoader)
    except OSError as e:
        raise UserError(f"cannot read task file {path}: {e.strerror}", where=str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise UserError(f"task file is not valid YAML: {getattr(e, 'problem', None) or e}",
                        where=f"{path}:{mark.line + 1}" if mark else str(path)) from None
    if not isinstance(cfg, dict):
        raise UserError("a task file must be a YAML mapping of keys to values", where=str(path),
                        fix="see docs/fewshot.md, 'Adding a task'")
    includes = cfg.pop("include", None)
    merged: dict = {}
    for inc in [] if includes is None else includes if isinstance(includes, list) else [includes]:
        p = Path(inc) if Path(inc).is_absolute() else path.parent / inc
        if not p.is_file():
            raise UserError(f"included file not found: {p}", where=str(path), fix="paths are relative to the YAML")
        merged.update(read_task_yaml(p, _seen | {path}))
    merged.update(cfg)
    return merged


# --- data: local files (hfrepro's `custom_dataset`, and lm-eval's dataset_path) --------------------------

def local_jsonl(data_files: Any, split_column: str | None = None, config_source: str | None = None, **_: Any):
    """lm-eval `custom_dataset`: JSON-lines files relative to the task YAML, split by a column.

    lm-eval passes the task's `metadata` (with `config_source`, the YAML's path) and `dataset_kwargs`.
    `data_files`: one file, or {split: file}. With `split_column`, each row goes to the split it names."""
    from datasets import Dataset, DatasetDict

    base = Path(config_source).parent if config_source else Path.cwd()
    files = data_files if isinstance(data_files, dict) else {"train": data_files}
    out: dict[str, list[dict]] = {}
    for split, name in files.items():
        p = Path(name).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise UserError(f"data file not found: {p}", where=config_source,
                            fix="data_files are relative to the task YAML")
        rows = read_jsonl(p)
        if split_column is None:
            out.setdefault(split, []).extend(rows)
            continue
        for i, r in enumerate(rows, 1):
            if split_column not in r:
                raise UserError(f"row {i} has no {split_column!r} column", where=f"{p}:{i}",
                                fix="give every row its split, or drop split_column")
            out.setdefault(str(r[split_column]), []).append(r)
    return DatasetDict({k: Dataset.from_list(v) for k, v in out.items()})


def _next_to_yaml(files: Any, base: Path) -> Any:
    """data_files with relative paths resolved against the YAML's folder where the file is there (lm-eval
    reads them against the working directory; a path that exists there still works)."""
    if isinstance(files, dict):
        return {k: _next_to_yaml(v, base) for k, v in files.items()}
    if isinstance(files, list):
        return [_next_to_yaml(v, base) for v in files]
    p = Path(str(files)).expanduser()
    return str(base / p) if not p.is_absolute() and "://" not in str(files) and (base / p).exists() else str(files)


def load_splits(task: "Task") -> dict[str, list[dict]]:
    """{split: rows} of a task, read as lm-eval reads them (custom_dataset, or datasets.load_dataset)."""
    src = task.dataset
    kwargs = dict(src.get("dataset_kwargs") or {})
    kwargs.pop("trust_remote_code", None)
    try:
        if src.get("custom_dataset") is not None:
            fn = src["custom_dataset"]
            fn = fn.resolve() if isinstance(fn, Function) else fn
            meta = {**(src.get("metadata") or {}), "config_source": str(task.path) if task.path else None}
            data = fn(**meta, **kwargs)
        else:
            import datasets
            if "data_files" in kwargs and task.path:
                kwargs["data_files"] = _next_to_yaml(kwargs["data_files"], task.path.parent)
            data = datasets.load_dataset(path=src["dataset_path"], name=src.get("dataset_name"), **kwargs)
    except UserError:
        raise
    except Exception as e:  # datasets' own errors: a missing file, no network for a Hub dataset, ...
        raise UserError(f"task {task.name!r}: cannot load its data ({type(e).__name__}: {e})", where=task.where,
                        fix="check dataset_path / dataset_kwargs; hfrepro reads the data as lm-eval does "
                            "(datasets.load_dataset), offline unless the Hub is reachable") from None
    process = src.get("process_docs")
    process = process.resolve() if isinstance(process, Function) else process
    out = {}
    for k, v in data.items():
        v = process(v) if process is not None else v
        out[k] = v.to_list() if hasattr(v, "to_list") else list(v)
    return out


# --- Jinja, as lm-eval renders --------------------------------------------------------------------------

@functools.cache
def _jinja():
    import jinja2

    env = jinja2.Environment(loader=jinja2.BaseLoader(), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    env.filters["regex_replace"] = lambda s, pattern, repl, count=0: re.sub(pattern, repl, s, count=count)
    return env


@functools.lru_cache(maxsize=4096)
def _template(text: str):
    return _jinja().from_string(text)


def render(text: str, row: dict) -> str:
    return _template(text).render(**row)


# --- the task ------------------------------------------------------------------------------------------

@dataclass
class Task:
    """One task (an lm-eval task config): how a row becomes a question and an answer, and how it is scored."""

    name: str
    doc_to_text: Any
    doc_to_target: Any
    dataset: dict                                # dataset_path, dataset_name, dataset_kwargs, custom_dataset, ...
    output_type: str = "generate_until"
    doc_to_choice: Any = None
    instruction: str = ""                        # lm-eval's `description`: before the demonstrations (Jinja)
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    until: list[str] = field(default_factory=lambda: ["\n\n"])
    max_gen_toks: int = DEFAULT_MAX_GEN_TOKS
    metric_list: list[dict] = field(default_factory=list)
    filters: list[dict] = field(default_factory=list)       # the steps of the (one) filter pipeline
    fewshot_config: dict = field(default_factory=dict)
    test_split: str | None = "test"
    validation_split: str | None = None
    training_split: str | None = None
    fewshot_split: str | None = None
    num_fewshot: int | None = None
    summary: str = ""                            # metadata.summary: one line for people
    path: Path | None = None                     # the YAML file (None for a task given as a dict)
    _splits: dict[str, list[dict]] | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return str(self.path) if self.path else f"task {self.name!r}"

    @property
    def metrics(self) -> list[str]:
        return [m["metric"] for m in self.metric_list]

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]

    # --- rows ---------------------------------------------------------------------------------------

    def splits(self) -> dict[str, list[dict]]:
        """{split: rows}, read once and checked: every template renders on every row it is used on."""
        if self._splits is None:
            self._splits = load_splits(self)
            _check_rows(self)
        return self._splits

    def _split(self, name: str, what: str) -> list[dict]:
        s = self.splits()
        if not s.get(name):
            have = ", ".join(f"{k} ({len(v)})" for k, v in s.items()) or "none"
            raise UserError(f"task {self.name!r}: the {what} split {name!r} is empty or missing (splits found: "
                            f"{have})", where=self.where, fix="name a split the data has in the task YAML")
        return s[name]

    def test_rows(self, limit: int | None = None) -> list[dict]:
        """The scored rows (lm-eval's eval docs: test_split, else validation_split); the first `limit`."""
        split = self.test_split or self.validation_split
        if not split:
            raise UserError(f"task {self.name!r} has neither test_split nor validation_split", where=self.where,
                            fix="add test_split: <the split to score>")
        rows = self._split(split, "scored")
        return rows[:limit] if limit else rows

    @property
    def pool_split(self) -> str | None:
        """The split demonstrations are drawn from (lm-eval: fewshot_split, else training, validation, test)."""
        return (self.fewshot_config.get("split") or self.fewshot_split or self.training_split
                or self.validation_split or self.test_split)

    def demo_rows(self) -> list[dict]:
        """The demonstration pool (never the scored rows, unless the task says so), in file order."""
        return self._split(self.pool_split, "demonstration")

    def fewshot_docs(self) -> list[dict]:
        """What the task's sampler draws from (lm-eval): the fewshot split, else `fewshot_config.samples`,
        else the pool."""
        if self.fewshot_config.get("split") or self.fewshot_split:
            return self.demo_rows()
        samples = self.fewshot_config.get("samples")
        if samples is not None:
            samples = samples.resolve() if isinstance(samples, Function) else samples
            return list(samples() if callable(samples) else samples)
        return self.demo_rows()

    @property
    def sampler(self) -> str:
        return self.fewshot_config.get("sampler", "default")

    # --- rendering (lm-eval's doc_to_text / doc_to_target / doc_to_choice rules) ---------------------

    def _field(self, spec: Any, row: dict, key: str) -> Any:
        if isinstance(spec, Function):
            spec = spec.resolve()
        if callable(spec):
            return spec(row)
        if not isinstance(spec, str):
            return spec
        if spec in row:
            return row[spec]
        try:
            return render(spec, row)
        except Exception as e:  # jinja2's UndefinedError, TemplateSyntaxError, TypeError in an expression
            raise UserError(f"task {self.name!r}: cannot render {key} {spec!r} on a row ({type(e).__name__}: "
                            f"{e}); the row has columns {', '.join(row)}", where=self.where) from None

    def choice_list(self, row: dict) -> list[str]:
        c = self.doc_to_choice
        out = self._field(c, row, "doc_to_choice")
        if isinstance(c, str) and c not in row and isinstance(out, str):
            try:
                out = ast.literal_eval(out)
            except (SyntaxError, ValueError):
                raise UserError(f"task {self.name!r}: doc_to_choice rendered {out!r}, not a list",
                                where=self.where, fix='e.g. doc_to_choice: "{{choices}}" or a YAML list') from None
        out = list(out.values()) if isinstance(out, dict) else out
        if not isinstance(out, list) or not out:
            raise UserError(f"task {self.name!r}: doc_to_choice gave {out!r}, not a non-empty list",
                            where=self.where)
        return [str(x) for x in out]

    def question(self, row: dict, spec: Any = None) -> str:
        spec = spec or self.doc_to_text
        q = self._field(spec, row, "doc_to_text")
        rendered = isinstance(spec, str) and spec not in row
        if not isinstance(q, str) or (rendered and q.isdigit() and self.doc_to_choice is not None):
            raise UserError(f"task {self.name!r}: doc_to_text gave {q!r}; a multiple-input task (one context "
                            "per choice) is not implemented by hfrepro", where=self.where,
                            fix="run this task in lm-eval")
        return q

    def _target(self, row: dict, spec: Any = None) -> Any:
        spec = spec or self.doc_to_target
        t = self._field(spec, row, "doc_to_target")
        if isinstance(spec, str) and spec not in row and isinstance(t, str):
            if t.isdigit() and self.doc_to_choice is not None:
                return ast.literal_eval(t)
            if len(t) >= 2 and t[0] == "[" and t[-1] == "]":
                try:
                    return ast.literal_eval(t)
                except (SyntaxError, ValueError):
                    return t
        return t

    def targets(self, row: dict) -> list[str]:
        """Every accepted answer: the target, or each of a list of targets (indices become their choices)."""
        t = self._target(row)
        ts = t if isinstance(t, list) else [t]
        if self.doc_to_choice is not None and any(isinstance(x, int) for x in ts):
            ch = self.choice_list(row)
            ts = [ch[x] if isinstance(x, int) and 0 <= x < len(ch) else x for x in ts]
        return [str(x) for x in ts]

    def target(self, row: dict) -> str:
        """The reference answer as a demonstration shows it (the first target of a list)."""
        return self.targets(row)[0]

    def gold_indices(self, row: dict) -> list[int]:
        """multiple_choice: the index of the right choice (several when doc_to_target gives a list)."""
        t, choices = self._target(row), self.choice_list(row)
        out = []
        for g in t if isinstance(t, list) else [t]:
            if isinstance(g, int) and 0 <= g < len(choices):
                out.append(g)
            elif isinstance(g, str) and g in choices:
                out.append(choices.index(g))
            else:
                raise UserError(f"task {self.name!r}: the target {g!r} is not one of the choices {choices}",
                                where=self.where, fix="doc_to_target must give a choice or its index")
        return out

    def gold_index(self, row: dict) -> int:
        return self.gold_indices(row)[0]

    def header(self, row: dict) -> str:
        """The text before the demonstrations: the task's `description`, rendered on the test row."""
        return self._field(self.instruction, row, "description") if self.instruction else ""

    def demo_parts(self, row: dict) -> tuple[str, str]:
        """A demonstration's question and answer (fewshot_config's doc_to_* where it sets them)."""
        fc = self.fewshot_config
        q = self.question(row, fc.get("doc_to_text"))
        t = self._target(row, fc.get("doc_to_target"))
        t = t[0] if isinstance(t, list) and t else t
        if isinstance(t, int) and self.doc_to_choice is not None:
            t = self.choice_list(row)[t]
        return q, str(t)

    def demo_text(self, row: dict) -> str:
        """One demonstration: question, target delimiter, answer, few-shot delimiter (lm-eval's layout)."""
        q, a = self.demo_parts(row)
        fc = self.fewshot_config
        return q + fc.get("target_delimiter", self.target_delimiter) + a + fc.get("fewshot_delimiter",
                                                                                 self.fewshot_delimiter)

    # --- scoring ------------------------------------------------------------------------------------

    def extract(self, generated: str) -> str:
        """The answer inside a generation: cut at each `until` string (lm-eval's rule), then the filters."""
        text = generated
        for term in self.until:
            if term:
                text = text.split(term)[0]
        return apply_filters(text, self.filters)

    def score_generation(self, prediction: str, row: dict) -> dict[str, bool]:
        golds = self.targets(row)
        return {m["metric"]: exact_match(prediction, golds, **_options(m)) for m in self.metric_list}


def _options(metric: dict) -> dict:
    return {k: metric[k] for k in EXACT_MATCH_OPTIONS if k in metric}


def exact_match(prediction: str, references: list[str], regexes_to_ignore: list[str] | None = None,
                ignore_case: bool = False, ignore_punctuation: bool = False, ignore_numbers: bool = False) -> bool:
    """lm-eval's exact_match for one prediction against any of `references`: the regexes deleted (in order,
    from both), then case, ASCII punctuation and digits ignored when asked."""
    p, refs = prediction, list(references)
    for rx in regexes_to_ignore or []:
        p, refs = re.sub(rx, "", p), [re.sub(rx, "", r) for r in refs]
    drop = (string.punctuation if ignore_punctuation else "") + (string.digits if ignore_numbers else "")
    if ignore_case:
        p, refs = p.lower(), [r.lower() for r in refs]
    if drop:
        table = str.maketrans("", "", drop)
        p, refs = p.translate(table), [r.translate(table) for r in refs]
    return p in refs


def apply_filters(text: str, steps: list[dict]) -> str:
    """lm-eval's filters on one response: regex, remove_whitespace, lowercase, uppercase, map, take_first."""
    for f in steps:
        fn = f["function"]
        if fn == "regex":
            found = re.findall(f.get("regex_pattern", r"#### (\-?[0-9\.\,]+)"), text)
            if found:
                m = found[f.get("group_select", 0)]
                if isinstance(m, tuple):
                    m = next((x for x in m if x), None)
                text = m.strip() if m is not None else f.get("fallback", "[invalid]")
            else:
                text = f.get("fallback", "[invalid]")
        elif fn == "remove_whitespace":
            text = text.strip()
        elif fn in ("lowercase", "uppercase"):
            text = text.lower() if fn == "lowercase" else text.upper()
        elif fn == "map":
            text = (f.get("mapping_dict") or {}).get(text, f.get("default_value"))
    return text


# --- building and checking a Task from a config -----------------------------------------------------

def task_from_config(cfg: dict, path: Path | None = None) -> Task:
    """A Task from an lm-eval task config (a YAML's keys after `include:`), checked: one clear error for a
    key hfrepro does not know or does not implement."""
    where = str(path) if path else "task config"
    cfg = {k: v for k, v in cfg.items() if k not in IGNORED}
    for k, what in REFUSED.items():
        if cfg.get(k) is not None:
            raise UserError(f"`{k}`: {what} is not implemented by hfrepro's evaluator", where=where,
                            fix="run this task in lm-eval (lm_eval --tasks ...)")
    unknown = sorted(set(cfg) - READ)
    if unknown:
        raise UserError(f"unknown key(s) in task: {', '.join(unknown)}", where=where,
                        fix="the keys are lm-evaluation-harness's task keys (docs/fewshot.md, 'Adding a task')")
    name = cfg.get("task")
    if not isinstance(name, str) or not name.strip() or re.search(r"[/\\,\x00]", name):
        raise UserError(f"`task` must be a name without / \\ or commas, got {name!r}", where=where,
                        fix="e.g. task: my_antonyms (any script is fine: task: 반의어)")
    out = cfg.get("output_type", "generate_until")
    if out not in OUTPUT_TYPES:
        raise UserError(f"output_type {out!r} is not implemented by hfrepro's evaluator", where=where,
                        fix=f"use one of: {', '.join(OUTPUT_TYPES)}; or run the task in lm-eval")
    for k in ("doc_to_text", "doc_to_target") + (("doc_to_choice",) if out == "multiple_choice" else ()):
        if cfg.get(k) is None:
            raise UserError(f"task {name!r} has no `{k}`", where=where, fix=f"add {k}: (a Jinja template or column)")
    if cfg.get("custom_dataset") is None and not cfg.get("dataset_path"):
        raise UserError(f"task {name!r} names no data (dataset_path or custom_dataset)", where=where,
                        fix="e.g. dataset_path: json + dataset_kwargs: {data_files: {test: test.jsonl}}")
    if int(cfg.get("repeats") or 1) != 1 or cfg.get("unsafe_code"):
        raise UserError("repeats > 1 and unsafe_code are not implemented by hfrepro's evaluator", where=where,
                        fix="run this task in lm-eval")
    for k in ("description", "target_delimiter", "fewshot_delimiter"):
        if k in cfg and cfg[k] is not None and not isinstance(cfg[k], str):
            raise UserError(f"`{k}` must be a string, got {cfg[k]!r}", where=where, fix="quote it in the YAML")
    for k in ("doc_to_text", "doc_to_target", "doc_to_choice", "description"):
        _check_template(cfg.get(k), k, where)
    until, max_toks = _generation(cfg, where)
    meta = cfg.get("metadata") or {}
    return Task(
        name=name, doc_to_text=cfg["doc_to_text"], doc_to_target=cfg["doc_to_target"], output_type=out,
        doc_to_choice=cfg.get("doc_to_choice"), instruction=cfg.get("description") or "",
        target_delimiter=cfg.get("target_delimiter", " "), fewshot_delimiter=cfg.get("fewshot_delimiter", "\n\n"),
        until=until, max_gen_toks=max_toks, metric_list=_metric_list(cfg, out, where),
        filters=_filter_steps(cfg.get("filter_list"), where), fewshot_config=_fewshot_config(cfg, where),
        test_split=cfg.get("test_split"), validation_split=cfg.get("validation_split"),
        training_split=cfg.get("training_split"), fewshot_split=cfg.get("fewshot_split"),
        num_fewshot=cfg.get("num_fewshot"), summary=str(meta.get("summary", "")) if isinstance(meta, dict) else "",
        dataset={k: cfg.get(k) for k in ("dataset_path", "dataset_name", "dataset_kwargs", "custom_dataset",
                                         "process_docs", "metadata")},
        path=path)


def _check_template(spec: Any, key: str, where: str) -> None:
    if isinstance(spec, str):
        try:
            _template(spec)
        except Exception as e:  # jinja2.TemplateSyntaxError
            raise UserError(f"`{key}` is not a valid Jinja template ({e}): {spec!r}", where=where,
                            fix="columns are written {{column}}; see jinja.palletsprojects.com") from None


def _generation(cfg: dict, where: str) -> tuple[list[str], int]:
    """(until, max_gen_toks) from generation_kwargs, with lm-eval's defaults; only greedy decoding."""
    gk = dict(cfg.get("generation_kwargs") or {})
    delim = cfg.get("fewshot_delimiter", "\n\n")
    until = gk.pop("until", [delim])
    until = [until] if isinstance(until, str) else list(until or [])
    toks = next((gk.pop(k) for k in ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens")
                 if gk.get(k) is not None), DEFAULT_MAX_GEN_TOKS)
    for k in ("max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens"):
        gk.pop(k, None)
    temp = float(gk.pop("temperature", 0.0) or 0.0)
    sample = gk.pop("do_sample", None)
    if sample or (sample is None and temp > 0):
        raise UserError("sampling (do_sample / temperature > 0) is not implemented: hfrepro decodes greedily",
                        where=where, fix="set do_sample: false, or run this task in lm-eval")
    if gk:
        raise UserError(f"generation_kwargs {', '.join(sorted(gk))} are not implemented by hfrepro's evaluator",
                        where=where, fix="keep until, max_gen_toks, do_sample: false, temperature: 0")
    if not isinstance(toks, int) or toks < 1:
        raise UserError(f"max_gen_toks must be a positive integer, got {toks!r}", where=where)
    return until, toks


def _metric_list(cfg: dict, out: str, where: str) -> list[dict]:
    metrics = cfg.get("metric_list") or [{"metric": m} for m in DEFAULT_METRICS[out]]
    checked = []
    for m in metrics:
        name = m.get("metric") if isinstance(m, dict) else None
        if not isinstance(name, str) or name not in METRICS[out]:
            known = "; ".join(f"{o}: {', '.join(ms)}" for o, ms in METRICS.items())
            raise UserError(f"metric {name!r} is not implemented for output_type {out!r}", where=where,
                            fix=f"metrics hfrepro computes: {known}; or run the task in lm-eval")
        extra = set(m) - {"metric", "aggregation", "higher_is_better", "hf_evaluate",
                          *(EXACT_MATCH_OPTIONS if name == "exact_match" else ())}
        if extra or m.get("hf_evaluate"):
            raise UserError(f"metric {name!r}: option(s) {', '.join(sorted(extra)) or 'hf_evaluate'} are not "
                            "implemented by hfrepro", where=where, fix="run this task in lm-eval")
        agg = m.get("aggregation", "perplexity" if name == "perplexity" else "mean")
        if agg != ("perplexity" if name == "perplexity" else "mean"):
            raise UserError(f"metric {name!r}: aggregation {agg!r} is not implemented", where=where)
        for rx in m.get("regexes_to_ignore") or []:
            try:
                re.compile(rx)
            except re.error as e:
                raise UserError(f"regexes_to_ignore: {rx!r} is not a valid regular expression: {e}",
                                where=where) from None
        checked.append(dict(m))
    return checked


def _filter_steps(filter_list: Any, where: str) -> list[dict]:
    if not filter_list:
        return []
    if isinstance(filter_list, str) or len(filter_list) != 1:
        raise UserError("hfrepro scores one filter pipeline per task", where=where,
                        fix="keep one entry in filter_list, or run the task in lm-eval")
    steps = filter_list[0].get("filter") or []
    for f in steps:
        if f.get("function") not in FILTERS:
            raise UserError(f"filter {f.get('function')!r} is not implemented by hfrepro", where=where,
                            fix=f"filters hfrepro applies: {', '.join(FILTERS)}; or run the task in lm-eval")
        if f["function"] == "regex":
            re.compile(f.get("regex_pattern", ""))
    return [dict(f) for f in steps]


def _fewshot_config(cfg: dict, where: str) -> dict:
    fc = dict(cfg.get("fewshot_config") or {})
    unknown = set(fc) - {"sampler", "split", "samples", "process_docs", "doc_to_text", "doc_to_target",
                         "doc_to_choice", "target_delimiter", "fewshot_delimiter"}
    if unknown:
        raise UserError(f"fewshot_config: {', '.join(sorted(unknown))} not implemented by hfrepro", where=where,
                        fix="keep sampler, split, samples, doc_to_*, *_delimiter")
    if fc.get("sampler", "default") not in SAMPLERS:
        raise UserError(f"fewshot_config.sampler {fc.get('sampler')!r} is not implemented by hfrepro",
                        where=where, fix=f"use one of: {', '.join(SAMPLERS)}")
    if fc.get("process_docs") is not None:
        raise UserError("fewshot_config.process_docs is not implemented by hfrepro", where=where,
                        fix="use the task's process_docs, or run the task in lm-eval")
    return fc


def _check_rows(task: Task) -> None:
    """Render every template on the scored rows and the demonstrations before any model is loaded."""
    rows = task.test_rows()
    demos = task.fewshot_docs()
    for r in rows:
        task.header(r)
        task.question(r)
        if task.output_type == "multiple_choice":
            task.gold_indices(r)
        else:
            task.targets(r)
    for r in demos:
        task.demo_text(r)


# --- finding tasks -----------------------------------------------------------------------------------

def task_files(include_path: str | Path | list | None = None, shipped: bool = True) -> dict[str, Path]:
    """{task name: YAML file} for the tasks shipped with hfrepro (this stage's first) and every task YAML under
    `include_path` folders (as lm-eval's TaskManager(include_path=...)). Files without a `task:` name (include
    bases) are skipped."""
    folders = ([TASKS_DIR, *(d for d in SHIPPED_TASK_DIRS if d != TASKS_DIR)] if shipped else [TASKS_DIR])
    folders += [Path(p).expanduser() for p in _as_list(include_path)]
    return _index(tuple(str(f.resolve()) for f in folders))


def _as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, (str, Path)):
        return [p.strip() for p in str(x).split(",") if p.strip()]
    return list(x)


def _index(folders: tuple[str, ...]) -> dict[str, Path]:
    files = [p for f in folders for p in sorted(Path(f).glob("**/*.yaml"))]
    return _names(tuple((str(p), p.stat().st_mtime_ns) for p in files))


@functools.lru_cache(maxsize=32)
def _names(files: tuple[tuple[str, int], ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for f, _ in files:
        p = Path(f)
        try:
            name = yaml.load(p.read_text(encoding="utf-8"), Loader=_loader(p.parent)).get("task")  # noqa: S506
        except (yaml.YAMLError, OSError, AttributeError):
            continue
        if isinstance(name, str):
            found.setdefault(name, p)
    return found


def builtin_tasks() -> list[str]:
    """Names of this stage's tasks (hfrepro/fewshot/tasks/*.yaml): what `all` means."""
    return sorted(task_files(shipped=False))


def load_task_file(path: str | Path) -> Task:
    path = Path(path).expanduser().resolve()
    return task_from_config(read_task_yaml(path), path=path)


def load_task(spec: "str | Path | Task | dict", include_path: Any = None) -> Task:
    """A task from a name (built-in or under `include_path`), a YAML path, a config dict, or a Task."""
    if isinstance(spec, Task):
        return spec
    if isinstance(spec, dict):
        return task_from_config(spec)
    s = str(spec)
    p = Path(s).expanduser()
    if p.is_file():
        return load_task_file(p)
    files = task_files(include_path)
    if s in files:
        return load_task_file(files[s])
    if p.is_dir():
        raise UserError(f"task path is a folder: {p}", fix="point at a task .yaml inside it, or pass the folder "
                                                           "as --include_path and the task by name")
    if s.endswith((".yaml", ".yml")) or "/" in s:
        raise UserError(f"task file not found: {s}", fix="check the path")
    raise UserError(f"unknown task {s!r}", fix=f"built-in tasks: {', '.join(builtin_tasks())}; or a task YAML "
                                              "path, or --include_path FOLDER (docs/fewshot.md, 'Adding a task')")


def load_tasks(specs: "str | list", include_path: Any = None) -> list[Task]:
    """Tasks from a comma-separated string or a list; `all` means every built-in task."""
    if isinstance(specs, str):
        specs = [s.strip() for s in specs.split(",") if s.strip()]
    out: list[Task] = []
    for s in specs:
        out += [load_task(n) for n in builtin_tasks()] if s == "all" else [load_task(s, include_path)]
    if not out:
        raise UserError("no tasks given", fix=f"pass --tasks with some of: {', '.join(builtin_tasks())}")
    names = [t.name for t in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"task name(s) given twice: {', '.join(dup)}", fix="each task name must be unique")
    return out
