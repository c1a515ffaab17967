"""The few-shot evaluator: prompts with k demonstrations, batched generation or log-likelihood scoring.

    from hfrepro.fewshot import evaluate
    res = evaluate("smollm2-135m-instruct", ["uppercase", "add_2digit"], shots=[0, 1, 3, 8], limit=50)
    res.accuracy("uppercase", 8)          # the headline metric of that task at 8 shots
    res.save("runs/fewshot/smollm2")      # results.json, samples/*.jsonl (every prompt and answer), table.md

How a prompt is made (`prompt_format="raw"`, the GPT-3 protocol: plain text, no chat markup):

    {instruction}{instruction_separator}                      (when the task has an instruction)
    {question_1}{target_delimiter}{answer_1}{separator}       (k demonstrations)
    ...
    {question}                                                 (the test question)

`prompt_format="chat"` puts the instruction in a system message, each demonstration in a user/assistant
turn pair and the question in the last user turn, rendered with the tokenizer's chat template (the
lm-eval `--apply_chat_template --fewshot_as_multiturn` layout).

Demonstrations come from the task's demo split, never from the scored split. With `demos="fixed"`
(default) every test example of a task gets the same k demonstrations: the first k of a permutation of the
demo pool seeded by (seed, task name), so the 1-shot demo is the first of the 3-shot ones, and so on, and
every model sees the same ones. With `demos="per_example"` each test example draws its own (seeded by
seed, task name and example index), as GPT-3 did.

Speed: prompts of one (task, k) group share their first tokens (instruction + fixed demonstrations). That
shared prefix is run through the model once; its KV cache is copied into each batch, and only the
remaining tokens are computed (`model.generate(..., past_key_values=prefix_cache)`). The numbers are the
same as without the cache (tests/test_fewshot.py checks it).

Generation is greedy; the answer is the text before the first stop string, normalised (tasks.py) and
compared with the reference. Multiple choice follows lm-eval: the log-likelihood of each
`target_delimiter + choice` after the context (the context's trailing spaces moved into the continuation,
the pair tokenised together), `acc` = argmax of the sum, `acc_norm` = argmax of the sum divided by the
choice's length in characters.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hfrepro.errors import UserError
from hfrepro.fewshot.tasks import Task, load_tasks

PROMPT_FORMATS = ("raw", "chat")
DEMO_MODES = ("fixed", "per_example")
DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_SHOTS = (0, 1, 3, 8)


# --- results ----------------------------------------------------------------------------------------------

@dataclass
class FewShotResults:
    """What `evaluate` returns: scores by task and number of shots, plus every prompt and answer."""

    model: str
    config: dict[str, Any]
    # task -> k -> {"n": examples, <metric>: value, ...}; None when the prompts do not fit the model
    scores: dict[str, dict[int, dict[str, Any] | None]] = field(default_factory=dict)
    # task -> k -> one record per test example (prompt, target, prediction, correct, ...)
    samples: dict[str, dict[int, list[dict]]] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> description, metric, scoring, demos
    seconds: float = 0.0
    examples: int = 0  # scored (example, k) pairs

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds else 0.0

    def accuracy(self, task: str, k: int, metric: str | None = None) -> float | None:
        s = self.scores[task].get(k)
        if s is None:
            return None
        return s[metric or self.tasks[task]["metric"]]

    def curve(self, task: str, metric: str | None = None) -> dict[int, float | None]:
        return {k: self.accuracy(task, k, metric) for k in self.scores[task]}

    def table_rows(self) -> list[dict]:
        """One row per task: metric, then one column per number of shots (for hfrepro.report.md_table)."""
        rows = []
        for t, by_k in self.scores.items():
            row = {"model": self.label, "task": t, "metric": self.tasks[t]["metric"],
                   "n": next((s["n"] for s in by_k.values() if s), 0)}
            for k, s in by_k.items():
                row[f"{k}-shot"] = None if s is None else s[self.tasks[t]["metric"]]
            rows.append(row)
        return rows

    @property
    def label(self) -> str:
        """A short name for tables and plots: the model (a path shortened to its last folders), + format."""
        name = self.model
        if "/" in name and Path(name.split("+")[0]).exists():
            parts = Path(name).parts
            name = "/".join(parts[-2:]) if parts[-1] in ("model", "adapter") and len(parts) > 1 else parts[-1]
        extra = [x for x in (self.config.get("prompt_format", "raw") != "raw" and self.config["prompt_format"],
                             self.config.get("instruction", True) is False and "no instruction") if x]
        return f"{name} ({', '.join(extra)})" if extra else name

    def to_dict(self, with_samples: bool = False) -> dict:
        d = {"model": self.model, "label": self.label, "config": self.config, "tasks": self.tasks,
             "scores": {t: {str(k): v for k, v in by_k.items()} for t, by_k in self.scores.items()},
             "seconds": round(self.seconds, 2), "examples": self.examples,
             "examples_per_s": round(self.examples_per_s, 3)}
        if with_samples:
            d["samples"] = {t: {str(k): v for k, v in by_k.items()} for t, by_k in self.samples.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FewShotResults":
        r = cls(model=d["model"], config=d["config"], tasks=d["tasks"], seconds=d.get("seconds", 0.0),
                examples=d.get("examples", 0))
        r.scores = {t: {int(k): v for k, v in by_k.items()} for t, by_k in d["scores"].items()}
        r.samples = {t: {int(k): v for k, v in by_k.items()} for t, by_k in d.get("samples", {}).items()}
        return r

    def save(self, out_dir: str | Path, plot: bool = True) -> dict[str, Path]:
        """results.json, table.md, samples/<task>.jsonl (every prompt and answer) and accuracy_vs_shots.png."""
        from hfrepro.fewshot.report import save_results
        return save_results([self], out_dir, plot=plot)


# --- the main entry point -----------------------------------------------------------------------------

def evaluate(model: Any = DEFAULT_MODEL, tasks: "str | Sequence" = ("uppercase",),
             shots: Sequence[int] = DEFAULT_SHOTS, *, tokenizer: Any = None, adapter: str | None = None,
             limit: int | None = None, seed: int = 1234, demos: str = "fixed", prompt_format: str = "raw",
             batch_size: int = 32, dtype: str = "float32", device: str | None = None,
             trust_remote_code: bool = False, model_name: str | None = None,
             progress: bool = True, instruction: bool = True) -> FewShotResults:
    """Score `model` on `tasks` with each number of demonstrations in `shots`.

    model: an embedded name (smollm2-135m-instruct), a local folder (a save_pretrained folder, a run folder
        with model/, a LoRA adapter folder), a Hub id, or an already loaded causal LM (then pass `tokenizer`).
    tasks: built-in task names, task YAML paths, Task objects, or a comma-separated string; "all" = built-ins.
    adapter: a LoRA adapter folder loaded on top of `model` (base + adapter).
    limit: score only the first `limit` test examples of each task (the data files are pre-shuffled).
    seed: fixes which demonstrations are drawn; the same seed gives the same prompts for every model.
    instruction: False drops the tasks' instruction line (GPT-3 Figure 1.2: "no prompt" vs "natural language
        prompt").
    """
    import torch

    from hfrepro.models import load_causal_lm, load_tokenizer

    shots = _check_shots(shots)
    if prompt_format not in PROMPT_FORMATS:
        raise UserError(f"unknown prompt format {prompt_format!r}", fix=f"use one of: {', '.join(PROMPT_FORMATS)}")
    if demos not in DEMO_MODES:
        raise UserError(f"unknown demonstration mode {demos!r}", fix=f"use one of: {', '.join(DEMO_MODES)}")
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise UserError(f"limit must be at least 1, got {limit}")
    task_objs = load_tasks(tasks if isinstance(tasks, str) else list(tasks))
    for t in task_objs:  # read and check every data file before loading a model
        t.splits()
        if len(t.demo_rows()) < max(shots):
            raise UserError(f"task {t.name!r} has {len(t.demo_rows())} demonstration(s) in split "
                            f"{t.demo_split!r}, fewer than the {max(shots)} shots asked for", where=t.where,
                            fix="ask for fewer shots, or add rows to the demonstration split")

    if isinstance(model, (str, Path)):
        name = model_name or str(model)
        tok = tokenizer or load_tokenizer(str(model), trust_remote_code=trust_remote_code)
        lm = load_causal_lm(str(model), dtype=dtype, trust_remote_code=trust_remote_code, adapter=adapter)
        if adapter:
            name = model_name or f"{model}+{Path(adapter).name}"
    else:
        lm = model
        if tokenizer is None:
            path = getattr(lm, "name_or_path", None) or getattr(getattr(lm, "config", None), "_name_or_path", None)
            if not path:
                raise UserError("a model object was given without its tokenizer", fix="pass tokenizer=...")
            tok = load_tokenizer(path)
        else:
            tok = tokenizer
        name = model_name or getattr(lm, "name_or_path", None) or type(lm).__name__
    if prompt_format == "chat" and not getattr(tok, "chat_template", None):
        raise UserError(f"model {name!r} has no chat template, so prompt_format='chat' cannot be used",
                        fix="use prompt_format='raw' (--prompt_format raw)")
    if device is None and _world()[0] > 1:
        device = str(_state().device)
    if device is None and not isinstance(model, (str, Path)) and getattr(lm, "device", None) is not None:
        device = str(lm.device)              # a model object is scored where it is (it is not moved)
    dev = torch.device(device or default_device())
    if getattr(lm, "device", None) != dev:
        lm = lm.to(dev)
    was_training = lm.training
    lm.eval()

    config = {"model": name, "adapter": adapter, "tasks": [t.name for t in task_objs], "shots": shots,
              "limit": limit, "seed": seed, "demos": demos, "prompt_format": prompt_format,
              "instruction": instruction,
              "batch_size": batch_size, "dtype": str(dtype), "device": str(dev), "processes": _world()[0]}
    res = FewShotResults(model=name, config=config)
    engine = _Engine(lm, tok, dev, batch_size, prompt_format)
    engine.instruction = instruction
    t0 = time.time()
    try:
        for task in task_objs:
            _run_task(engine, task, shots, limit, seed, demos, res, progress)
    finally:
        if was_training:
            lm.train()
    res.seconds = time.time() - t0
    return res


def default_device() -> str:
    """cuda when there is a GPU, else cpu (the device a model given by name is scored on)."""
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_shots(shots) -> list[int]:
    if isinstance(shots, str):
        try:
            shots = [int(s) for s in shots.split(",") if s.strip()]
        except ValueError:
            raise UserError(f"shots must be comma-separated whole numbers, got {shots!r}",
                            fix="e.g. --shots 0,1,3,8") from None
    shots = sorted(set(int(s) for s in shots))
    if not shots or shots[0] < 0:
        raise UserError(f"shots must be whole numbers >= 0, got {shots}", fix="e.g. --shots 0,1,3,8")
    return shots


def _permutation(n: int, key: str) -> list[int]:
    order = list(range(n))
    random.Random(key).shuffle(order)   # a full permutation: k-shot demos are a prefix of (k+1)-shot ones
    return order


def demonstrations(task: Task, n: int, seed: int, mode: str = "fixed", index: int = 0) -> list[dict]:
    """The first `n` demonstrations for test example `index` (the same for every model)."""
    pool = task.demo_rows()
    key = f"{seed}:{task.name}" if mode == "fixed" else f"{seed}:{task.name}:{index}"
    return [pool[i] for i in _permutation(len(pool), key)[:n]]


def demo_order(task: Task, n: int, seed: int) -> list[int]:
    """Indices (into the demo split) of the first `n` fixed demonstrations, in prompt order."""
    return _permutation(len(task.demo_rows()), f"{seed}:{task.name}")[:n]


def build_prompt(task: Task, demos: list[dict], row: dict, prompt_format: str = "raw", tokenizer=None,
                 instruction: bool = True) -> str:
    """The prompt text for one test row (see the module docstring for the layout)."""
    if prompt_format == "raw":
        return (task.header() if instruction else "") + "".join(task.demo_text(d) for d in demos) + task.question(row)
    msgs = [{"role": "system", "content": task.instruction}] if task.instruction and instruction else []
    for d in demos:
        msgs += [{"role": "user", "content": task.question(d)}, {"role": "assistant", "content": task.target(d)}]
    msgs.append({"role": "user", "content": task.question(row)})
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def _run_task(engine: "_Engine", task: Task, shots: list[int], limit, seed, mode, res: FewShotResults,
              progress: bool) -> None:
    rows = task.test_rows(limit)
    res.tasks[task.name] = {"description": task.description, "scoring": task.scoring,
                            "metric": task.primary_metric, "metrics": task.metric, "n_test": len(rows),
                            "file": str(task.path) if task.path else None,
                            "fixed_demos": demo_order(task, max(shots), seed) if mode == "fixed" else None}
    if task.scoring == "multiple_choice":   # expected accuracy of a random guess
        res.tasks[task.name]["chance"] = sum(1 / len(task.choice_list(r)) for r in rows) / len(rows)
    res.scores[task.name], res.samples[task.name] = {}, {}
    mine = [i for i in range(len(rows)) if i % engine.world == engine.rank]   # this process's share
    for k in shots:
        prompts = [build_prompt(task, demonstrations(task, k, seed, mode, i), rows[i], engine.prompt_format,
                                engine.tok, engine.instruction) for i in mine]
        recs = _score(engine, task, [rows[i] for i in mine], mine, prompts, f"{task.name} {k}-shot", progress)
        if engine.world > 1:
            from accelerate.utils import gather_object
            parts = gather_object([recs])
            recs = None if any(p is None for p in parts) else sorted((r for p in parts for r in p),
                                                                      key=lambda r: r["index"])
        if recs is None:
            res.scores[task.name][k] = None
            continue
        score = {"n": len(recs)}
        for m in task.metric:
            score[m] = sum(bool(r[m]) for r in recs) / len(recs)
        res.scores[task.name][k] = score
        res.samples[task.name][k] = recs
        res.examples += len(recs)


def _score(engine: "_Engine", task: Task, rows: list[dict], index: list[int], prompts: list[str], desc: str,
           progress: bool) -> list[dict] | None:
    """One record per prompt (None when the prompts do not fit the model's context)."""
    recs = []
    if task.scoring == "generate":
        out = engine.generate(prompts, task, desc, progress)
        if out is None:
            return None
        for i, r, p, g in zip(index, rows, prompts, out):
            pred = task.extract(g)
            rec = {"index": i, "prompt": p, "target": task.target(r), "generation": g, "prediction": pred}
            for m in task.metric:
                rec[m] = task.is_correct(pred, r, m)
            recs.append(rec)
        return recs
    choices = [task.choice_list(r) for r in rows]
    delim = task.target_delimiter if engine.prompt_format == "raw" else ""
    pairs = [(p, delim + c) for p, cs in zip(prompts, choices) for c in cs]
    ll = engine.loglikelihood(pairs, desc, progress)
    if ll is None:
        return None
    j = 0
    for i, r, p, cs in zip(index, rows, prompts, choices):
        lls = ll[j:j + len(cs)]
        j += len(cs)
        gold = task.gold_index(r)
        pred = max(range(len(cs)), key=lambda c: lls[c])
        pred_n = max(range(len(cs)), key=lambda c: lls[c] / max(1, len(cs[c])))   # lm-eval's acc_norm
        recs.append({"index": i, "prompt": p, "choices": cs, "target": cs[gold], "gold": gold,
                     "loglikelihoods": [round(x, 4) for x in lls], "prediction": cs[pred],
                     "acc": pred == gold, "acc_norm": pred_n == gold})
    return recs


# --- the model side ---------------------------------------------------------------------------------------

class _Engine:
    """Batched greedy generation and log-likelihoods over prompts that share a prefix."""

    def __init__(self, model, tokenizer, device, batch_size: int, prompt_format: str):
        self.model, self.tok, self.device = model, tokenizer, device
        self.batch_size, self.prompt_format = batch_size, prompt_format
        cfg = getattr(model, "config", None)
        self.max_len = None
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            v = getattr(cfg, attr, None) or getattr(getattr(cfg, "text_config", None), attr, None)
            if isinstance(v, int) and v > 0:
                self.max_len = v
                break
        # pads are always masked out; any id will do when the tokenizer has no pad token (it is not changed)
        self.pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
        self.world, self.rank = _world()
        self.instruction = True

    def encode(self, text: str) -> list[int]:
        # raw: the tokenizer's own special-token behaviour (as lm-eval); chat: the template holds them.
        if self.prompt_format == "chat":
            return self.tok(text, add_special_tokens=False).input_ids
        return self.tok(text).input_ids

    def _fits(self, lengths: list[int], extra: int, desc: str) -> bool:
        if self.max_len and max(lengths) + extra > self.max_len:
            print(f"[fewshot] skipped {desc}: prompts of up to {max(lengths)} tokens (+{extra}) do not fit "
                  f"the model's {self.max_len}-token context", flush=True)
            return False
        return True

    def _prefix(self, seqs: list[list[int]], cap: int):
        """Length of the common token prefix (at most `cap`) and its KV cache (None when shorter than 2)."""
        import torch

        n = 0
        first = seqs[0]
        while n < cap and all(len(s) > n and s[n] == first[n] for s in seqs):
            n += 1
        if n < 2 or len(seqs) < 2:
            return 0, None
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([first[:n]], device=self.device), use_cache=True)
        return n, out.past_key_values

    def _bar(self, total: int, desc: str, progress: bool):
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=desc, unit="seq", disable=not progress, leave=False)

    def generate(self, prompts: list[str], task: Task, desc: str = "", progress: bool = False) -> list[str] | None:
        import torch

        seqs = [self.encode(p) for p in prompts]
        if not self._fits([len(s) for s in seqs], task.max_new_tokens, desc):
            return None
        n_pre, cache = self._prefix(seqs, min(len(s) for s in seqs) - 1)
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        out: list[str] = [""] * len(seqs)
        stop = _StopOnStrings(self.tok, task.stop)
        with self._bar(len(seqs), desc, progress) as bar, torch.no_grad():
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                suf = [seqs[i][n_pre:] for i in idx]
                width = max(len(s) for s in suf)
                ids = [seqs[idx[0]][:n_pre] + [self.pad_id] * (width - len(s)) + s for s in suf]
                mask = [[1] * n_pre + [0] * (width - len(s)) + [1] * len(s) for s in suf]
                kw = {}
                if cache is not None:
                    c = copy.deepcopy(cache)
                    c.batch_repeat_interleave(len(idx))
                    kw["past_key_values"] = c
                stop.reset(n_pre + width)
                gen = self.model.generate(
                    input_ids=torch.tensor(ids, device=self.device),
                    attention_mask=torch.tensor(mask, device=self.device),
                    max_new_tokens=task.max_new_tokens, do_sample=False, temperature=None, top_p=None,
                    top_k=None, pad_token_id=self.pad_id, stopping_criteria=[stop], use_cache=True, **kw)
                for row, i in zip(gen[:, n_pre + width:].tolist(), idx):
                    out[i] = self.tok.decode(row, skip_special_tokens=True)
                bar.update(len(idx))
        return out

    def loglikelihood(self, pairs: list[tuple[str, str]], desc: str = "",
                      progress: bool = False) -> list[float] | None:
        """Sum of log-probabilities of each continuation given its context (lm-eval's encoding rules)."""
        import torch

        wholes, ctx_lens = [], []
        for ctx, cont in pairs:
            n_sp = len(ctx) - len(ctx.rstrip())
            if n_sp:
                ctx, cont = ctx[:-n_sp], ctx[-n_sp:] + cont
            whole = self.encode(ctx + cont)
            c = len(self.encode(ctx))
            if c < 1 or c >= len(whole):
                raise UserError(f"empty context or continuation while scoring {cont!r}",
                                fix="check the task's template and choices")
            wholes.append(whole)
            ctx_lens.append(c)
        if not self._fits([len(w) for w in wholes], 0, desc):
            return None
        # the last context token is always computed in the batch, so its logits are there
        n_pre, cache = self._prefix(wholes, min(ctx_lens) - 1)
        order = sorted(range(len(wholes)), key=lambda i: -len(wholes[i]))
        out = [0.0] * len(wholes)
        with self._bar(len(wholes), desc, progress) as bar, torch.no_grad():
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                suf = [wholes[i][n_pre:-1] for i in idx]  # the last token is only a target
                width = max(len(s) for s in suf)
                ids = torch.tensor([s + [self.pad_id] * (width - len(s)) for s in suf], device=self.device)
                mask = torch.tensor([[1] * n_pre + [1] * len(s) + [0] * (width - len(s)) for s in suf],
                                    device=self.device)
                kw = {}
                if cache is not None:
                    c = copy.deepcopy(cache)
                    c.batch_repeat_interleave(len(idx))
                    kw["past_key_values"] = c
                logits = self.model(input_ids=ids, attention_mask=mask, use_cache=cache is not None, **kw).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                for row, i in enumerate(idx):
                    w, c = wholes[i], ctx_lens[i]
                    tgt = torch.tensor(w[c:], device=self.device)
                    pos = torch.arange(c - 1 - n_pre, len(w) - 1 - n_pre, device=self.device)
                    out[i] = float(logp[row, pos, tgt].sum())
                bar.update(len(idx))
        return out


def _world() -> tuple[int, int]:
    """(number of processes, this process's rank): > 1 under `accelerate launch` / torchrun with several
    processes, which then score disjoint shares of each task and gather the records."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 1, 0
    st = _state()
    return st.num_processes, st.process_index


def _state():
    # A bare PartialState() ignores ACCELERATE_USE_CPU (set by setup_runtime): on a machine without a GPU it
    # would leave each process alone; cpu=True makes them one gloo process group.
    import torch
    from accelerate import PartialState
    return PartialState(cpu=not torch.cuda.is_available())


class _StopOnStrings:
    """Stop a batch when every sequence has produced one of the stop strings (or the end-of-sequence token).

    Sequences that finish early keep generating until the batch ends; `Task.extract` cuts their text.
    """

    def __init__(self, tokenizer, stops: list[str]):
        self.tok, self.stops, self.start = tokenizer, [s for s in stops if s], 0

    def reset(self, start: int) -> None:
        self.start = start

    def __call__(self, input_ids, scores, **kw):
        import torch

        new = input_ids[:, self.start:]
        eos = self.tok.eos_token_id
        done = []
        for row in new.tolist():
            if eos is not None and eos in row:
                done.append(True)
                continue
            text = self.tok.decode(row, skip_special_tokens=True)
            done.append(any(s in text for s in self.stops))
        return torch.tensor(done, device=input_ids.device)
