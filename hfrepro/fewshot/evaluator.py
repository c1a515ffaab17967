"""hfrepro's few-shot evaluator: prompts with k demonstrations, batched greedy generation or log-likelihoods.

    from hfrepro.fewshot.evaluator import evaluate
    res = evaluate("smollm2-135m-instruct", ["uppercase", "add_2digit"], shots=[0, 1, 3, 8], limit=50)
    res.accuracy("uppercase", 8)          # the headline metric of that task at 8 shots
    res.save("runs/fewshot/smollm2")      # results.json, samples/*.jsonl (every prompt and answer), table.md

A prompt is laid out as lm-evaluation-harness lays it out (`prompt_format="raw"`, GPT-3's protocol):

    {description}                                             (the task's instruction, if any)
    {question_1}{target_delimiter}{answer_1}{fewshot_delimiter}   (k demonstrations)
    ...
    {question}                                                 (the test question)

`prompt_format="chat"` puts the description in a system message, each demonstration in a user/assistant turn
pair and the question in the last user turn, rendered with the tokenizer's chat template (lm-eval's
`--apply_chat_template --fewshot_as_multiturn`).

Demonstrations (`demos`): "task" (default) draws them as the task YAML says, with lm-eval's samplers:
`first_n` (the first k of `fewshot_config.samples` or of the fewshot split: the same k for every test example;
hfrepro's own tasks list theirs) or `default` (a seeded random draw per test example, in lm-eval's order).
"fixed" takes the first k of a permutation of the demonstration pool seeded by (seed, task name), the same for
every example; "per_example" draws per example (seeded by seed, task and example index), as GPT-3 did.

Speed: prompts of one (task, k) group share their first tokens (description + fixed demonstrations). That
shared prefix is run through the model once; its KV cache is copied into each batch, and only the remaining
tokens are computed. The numbers are the same as without the cache (tests/test_fewshot.py checks it).

Scoring follows lm-eval: a generation is cut at the task's `until` strings, filtered, and compared by
`exact_match` (with the task's options); multiple choice scores `target_delimiter + choice` after the prompt by
log-likelihood (the prompt's trailing spaces moved into the continuation, the pair tokenised together): `acc` =
argmax of the sum, `acc_norm` = of the sum per character, `acc_bytes` = per UTF-8 byte; `loglikelihood` tasks
score the target itself (`acc` = greedy, `perplexity`).
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Sequence

from hfrepro import runtime
from hfrepro.errors import UserError
from hfrepro.fewshot.report import FewShotResults
from hfrepro.fewshot.tasks import Task, load_tasks
from hfrepro.models import load_causal_lm, load_tokenizer

PROMPT_FORMATS = ("raw", "chat")
DEMO_MODES = ("task", "fixed", "per_example")
DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_SHOTS = (0, 1, 3, 8)


# --- the main entry point -----------------------------------------------------------------------------

def evaluate(model: Any = DEFAULT_MODEL, tasks: "str | Sequence" = ("uppercase",),
             shots: Sequence[int] = DEFAULT_SHOTS, *, tokenizer: Any = None, adapter: str | None = None,
             limit: int | None = None, seed: int = 1234, demos: str = "task", prompt_format: str = "raw",
             batch_size: int = 32, dtype: str = "float32", device: str | None = None,
             trust_remote_code: bool = False, model_name: str | None = None,
             progress: bool = True, instruction: bool = True) -> FewShotResults:
    """Score `model` on `tasks` with each number of demonstrations in `shots`.

    model: an embedded name (smollm2-135m-instruct), a local folder (a save_pretrained folder, a run folder,
        a LoRA adapter folder), a Hub id, or an already loaded causal LM (then pass `tokenizer`).
    tasks: task names, task YAML paths, Task objects, or a comma-separated string; "all" = the built-in tasks.
    adapter: a LoRA adapter folder loaded on top of `model` (base + adapter).
    limit: score only the first `limit` test examples of each task (the data files are pre-shuffled).
    seed: the seed of lm-eval's `default` sampler and of the "fixed" / "per_example" modes.
    demos: "task" (the task's own sampler), "fixed" or "per_example" (see the module docstring).
    instruction: False drops the task's description (GPT-3 Figure 1.2: "no prompt" vs "natural language
        prompt").
    """
    task_objs, shots = check_arguments(tasks, shots, prompt_format, demos, batch_size, limit)
    lm, tok, name = _model(model, tokenizer, adapter, dtype, trust_remote_code, model_name)
    if prompt_format == "chat" and not getattr(tok, "chat_template", None):
        raise UserError(f"model {name!r} has no chat template, so prompt_format='chat' cannot be used",
                        fix="use prompt_format='raw' (--prompt_format raw)")
    dev = _device(lm, device, given_by_name=isinstance(model, (str, Path)))
    if getattr(lm, "device", None) != dev:
        lm = lm.to(dev)
    was_training = lm.training
    lm.eval()
    engine = _Engine(lm, tok, dev, batch_size, prompt_format, instruction)
    config = {"model": name, "adapter": adapter, "tasks": [t.name for t in task_objs], "shots": shots,
              "limit": limit, "seed": seed, "demos": demos, "prompt_format": prompt_format,
              "instruction": instruction, "batch_size": batch_size, "dtype": str(dtype), "device": str(dev),
              "processes": engine.world}
    res = FewShotResults(model=name, config=config)
    t0 = time.time()
    try:
        for task in task_objs:
            _run_task(engine, task, shots, limit, seed, demos, res, progress)
    finally:
        if was_training:
            lm.train()
    res.seconds = time.time() - t0
    return res


def check_arguments(tasks: "str | Sequence", shots: "str | Sequence[int]", prompt_format: str = "raw",
                    demos: str = "task", batch_size: int = 1, limit: int | None = None) -> tuple[list[Task], list[int]]:
    """(tasks, shots) checked before any model loads: every data file read, enough demonstrations for every k."""
    shots = parse_shots(shots)
    if prompt_format not in PROMPT_FORMATS:
        raise UserError(f"unknown prompt format {prompt_format!r}", fix=f"use one of: {', '.join(PROMPT_FORMATS)}")
    if demos not in DEMO_MODES:
        raise UserError(f"unknown demonstration mode {demos!r}", fix=f"use one of: {', '.join(DEMO_MODES)}")
    if batch_size < 1:
        raise UserError(f"batch_size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise UserError(f"limit must be at least 1, got {limit}")
    task_objs = load_tasks(tasks if isinstance(tasks, str) else list(tasks))
    for t in task_objs:
        have = available_demos(t, demos)
        if have < max(shots):
            raise UserError(f"task {t.name!r} has {have} demonstration(s), fewer than the {max(shots)} shots "
                            "asked for", where=t.where, fix="ask for fewer shots, or add demonstrations")
    return task_objs, shots


def _model(model, tokenizer, adapter, dtype, trust_remote_code, model_name):
    """(model, tokenizer, name) from a name/folder (loaded here) or a model object (used as it is)."""
    if isinstance(model, (str, Path)):
        tok = tokenizer or load_tokenizer(str(model), trust_remote_code=trust_remote_code)
        lm = load_causal_lm(str(model), dtype=dtype, trust_remote_code=trust_remote_code, adapter=adapter)
        return lm, tok, model_name or (f"{model}+{Path(adapter).name}" if adapter else str(model))
    if tokenizer is None:
        path = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
        if not path:
            raise UserError("a model object was given without its tokenizer", fix="pass tokenizer=...")
        tokenizer = load_tokenizer(path)
    return model, tokenizer, model_name or getattr(model, "name_or_path", None) or type(model).__name__


def _device(lm, device: str | None, given_by_name: bool):
    """Where to score: `device`; this process's device under a multi-process launch; a model object where it
    is (it is not moved); else cuda if there is a GPU, else cpu."""
    import torch

    if device is None and _distributed():
        device = str(runtime.process_state().device)
    if device is None and not given_by_name and getattr(lm, "device", None) is not None:
        device = str(lm.device)
    return torch.device(device or default_device())


def default_device() -> str:
    """cuda when there is a GPU, else cpu (the device a model given by name is scored on)."""
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def parse_shots(shots) -> list[int]:
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


# --- demonstrations --------------------------------------------------------------------------------------

def _permutation(n: int, key: str) -> list[int]:
    order = list(range(n))
    random.Random(key).shuffle(order)   # a full permutation: k-shot demos are a prefix of (k+1)-shot ones
    return order


def _excludes_eval_doc(task: Task) -> bool:
    """lm-eval drops the test row itself from its demonstrations when they come from the scored split."""
    return (task.fewshot_config.get("split") or task.fewshot_split) == task.test_split


def available_demos(task: Task, mode: str = "task") -> int:
    """How many demonstrations one prompt can have (read and check the task's data)."""
    task.test_rows()
    if mode != "task":
        return len(task.demo_rows())
    return len(task.fewshot_docs()) - _excludes_eval_doc(task)


def demo_sets(task: Task, n: int, seed: int, mode: str, rows: list[dict]) -> list[list[dict]]:
    """The `n` demonstrations of each test row, in prompt order (the same for every model)."""
    if n == 0:
        return [[] for _ in rows]
    if mode == "fixed":
        pool = task.demo_rows()
        demos = [pool[i] for i in _permutation(len(pool), f"{seed}:{task.name}")[:n]]
        return [demos for _ in rows]
    if mode == "per_example":
        pool = task.demo_rows()
        return [[pool[j] for j in _permutation(len(pool), f"{seed}:{task.name}:{i}")[:n]] for i in range(len(rows))]
    pool, drop = task.fewshot_docs(), _excludes_eval_doc(task)
    if task.sampler == "first_n":          # lm-eval's FirstNSampler
        return [[x for x in pool if not (drop and x == r)][:n] for r in rows]
    rnd, out = random.Random(seed), []     # lm-eval's ContextSampler, one draw per row in row order
    for r in rows:
        if not drop:
            out.append(rnd.sample(pool, n))
            continue
        got = [x for x in rnd.sample(pool, n + 1) if x != r][:n]
        out.append(got if len(got) == n else rnd.sample([x for x in pool if x != r], n))
    return out


def demonstrations(task: Task, n: int, seed: int, mode: str = "fixed", index: int = 0) -> list[dict]:
    """The `n` demonstrations of test example `index` (see `demo_sets`)."""
    rows = task.test_rows()[:index + 1] if mode == "task" else [{}] * (index + 1)
    return demo_sets(task, n, seed, mode, rows)[index]


def build_prompt(task: Task, demos: list[dict], row: dict, prompt_format: str = "raw", tokenizer=None,
                 instruction: bool = True) -> str:
    """The prompt text for one test row (see the module docstring for the layout)."""
    header = task.header(row) if instruction else ""
    if prompt_format == "raw":
        return header + "".join(task.demo_text(d) for d in demos) + task.question(row)
    msgs = [{"role": "system", "content": header}] if header else []
    for d in demos:
        q, a = task.demo_parts(d)
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    msgs.append({"role": "user", "content": task.question(row)})
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


# --- scoring one task ------------------------------------------------------------------------------------

def _task_info(task: Task, rows: list[dict], mode: str) -> dict:
    info = {"summary": task.summary, "output_type": task.output_type, "metric": task.primary_metric,
            "metrics": task.metrics, "n_test": len(rows), "file": str(task.path) if task.path else None,
            "demos": mode, "sampler": task.sampler if mode == "task" else mode}
    if task.output_type == "multiple_choice":   # expected accuracy of a random guess
        info["chance"] = sum(len(task.gold_indices(r)) / len(task.choice_list(r)) for r in rows) / len(rows)
    return info


def _run_task(engine: "_Engine", task: Task, shots: list[int], limit, seed, mode, res: FewShotResults,
              progress: bool) -> None:
    rows = task.test_rows(limit)
    res.tasks[task.name] = _task_info(task, rows, mode)
    res.scores[task.name], res.samples[task.name] = {}, {}
    mine = [i for i in range(len(rows)) if i % engine.world == engine.rank]   # this process's share
    for k in shots:
        demos = demo_sets(task, k, seed, mode, rows)
        prompts = [build_prompt(task, demos[i], rows[i], engine.prompt_format, engine.tok, engine.instruction)
                   for i in mine]
        recs = _score(engine, task, [rows[i] for i in mine], mine, prompts, f"{task.name} {k}-shot", progress)
        if engine.world > 1:
            from accelerate.utils import gather_object
            parts = gather_object([recs])
            recs = None if any(p is None for p in parts) else sorted((r for p in parts for r in p),
                                                                      key=lambda r: r["index"])
        res.scores[task.name][k] = None if recs is None else aggregate(task, recs)
        if recs is not None:
            res.samples[task.name][k] = recs
            res.examples += len(recs)


def aggregate(task: Task, recs: list[dict]) -> dict:
    """{"n": examples, metric: value}: the mean of each per-example metric; perplexity = exp(-mean ll)."""
    score: dict[str, Any] = {"n": len(recs)}
    for m in task.metrics:
        if m == "perplexity":
            score[m] = math.exp(-sum(r["loglikelihood"] for r in recs) / len(recs))
        else:
            score[m] = sum(bool(r[m]) for r in recs) / len(recs)
    return score


def _score(engine: "_Engine", task: Task, rows: list[dict], index: list[int], prompts: list[str], desc: str,
           progress: bool) -> list[dict] | None:
    """One record per prompt (None when the prompts do not fit the model's context)."""
    if task.output_type == "generate_until":
        out = engine.generate(prompts, task, desc, progress)
        if out is None:
            return None
        recs = []
        for i, r, p, g in zip(index, rows, prompts, out):
            pred = task.extract(g)
            recs.append({"index": i, "prompt": p, "target": task.target(r), "generation": g, "prediction": pred,
                         **task.score_generation(pred, r)})
        return recs
    if task.output_type == "loglikelihood":
        ll = engine.loglikelihood([(p, task.target(r)) for p, r in zip(prompts, rows)], desc, progress)
        return None if ll is None else [
            {"index": i, "prompt": p, "target": task.target(r), "loglikelihood": round(x, 4), "acc": greedy}
            for i, r, p, (x, greedy) in zip(index, rows, prompts, ll)]
    return _score_choices(engine, task, rows, index, prompts, desc, progress)


def _score_choices(engine: "_Engine", task: Task, rows: list[dict], index: list[int], prompts: list[str],
                   desc: str, progress: bool) -> list[dict] | None:
    choices = [task.choice_list(r) for r in rows]
    delim = task.target_delimiter if engine.prompt_format == "raw" else ""
    ll = engine.loglikelihood([(p, delim + c) for p, cs in zip(prompts, choices) for c in cs], desc, progress)
    if ll is None:
        return None
    recs, j = [], 0
    for i, r, p, cs in zip(index, rows, prompts, choices):
        lls = [x for x, _ in ll[j:j + len(cs)]]
        j += len(cs)
        golds = task.gold_indices(r)
        best = {"acc": max(range(len(cs)), key=lambda c: lls[c]),       # lm-eval's acc, acc_norm, acc_bytes
                "acc_norm": max(range(len(cs)), key=lambda c: lls[c] / max(1, len(cs[c]))),
                "acc_bytes": max(range(len(cs)), key=lambda c: lls[c] / max(1, len(cs[c].encode("utf-8"))))}
        recs.append({"index": i, "prompt": p, "choices": cs, "target": cs[golds[0]], "gold": golds[0],
                     "loglikelihoods": [round(x, 4) for x in lls], "prediction": cs[best["acc"]],
                     **{m: best[m] in golds for m in best}})
    return recs


# --- the model side ---------------------------------------------------------------------------------------

class _Engine:
    """Batched greedy generation and log-likelihoods over prompts that share a prefix."""

    def __init__(self, model, tokenizer, device, batch_size: int, prompt_format: str, instruction: bool = True):
        self.model, self.tok, self.device = model, tokenizer, device
        self.batch_size, self.prompt_format, self.instruction = batch_size, prompt_format, instruction
        cfg = getattr(model, "config", None)
        self.max_len = None
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            v = getattr(cfg, attr, None) or getattr(getattr(cfg, "text_config", None), attr, None)
            if isinstance(v, int) and v > 0:
                self.max_len = v
                break
        # pads are always masked out; any id will do when the tokenizer has no pad token (it is not changed)
        self.pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
        self.world, self.rank = 1, 0
        if _distributed():   # several processes score disjoint shares of each task and gather the records
            state = runtime.process_state()
            self.world, self.rank = state.num_processes, state.process_index

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

    def _cache_for(self, cache, size: int) -> dict:
        if cache is None:
            return {}
        c = copy.deepcopy(cache)
        c.batch_repeat_interleave(size)
        return {"past_key_values": c}

    def _bar(self, total: int, desc: str, progress: bool):
        from tqdm.auto import tqdm
        # progress bars on a terminal only (None: tqdm's own test), never in a log file
        return tqdm(total=total, desc=desc, unit="seq", disable=None if progress else True, leave=False)

    def generate(self, prompts: list[str], task: Task, desc: str = "", progress: bool = False) -> list[str] | None:
        import torch

        seqs = [self.encode(p) for p in prompts]
        if not self._fits([len(s) for s in seqs], task.max_gen_toks, desc):
            return None
        n_pre, cache = self._prefix(seqs, min(len(s) for s in seqs) - 1)
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        out: list[str] = [""] * len(seqs)
        stop = _StopOnStrings(self.tok, task.until)
        with self._bar(len(seqs), desc, progress) as bar, torch.no_grad():
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                suf = [seqs[i][n_pre:] for i in idx]
                width = max(len(s) for s in suf)
                ids = [seqs[idx[0]][:n_pre] + [self.pad_id] * (width - len(s)) + s for s in suf]
                mask = [[1] * n_pre + [0] * (width - len(s)) + [1] * len(s) for s in suf]
                stop.reset(n_pre + width)
                gen = self.model.generate(
                    input_ids=torch.tensor(ids, device=self.device),
                    attention_mask=torch.tensor(mask, device=self.device),
                    max_new_tokens=task.max_gen_toks, do_sample=False, temperature=None, top_p=None,
                    top_k=None, pad_token_id=self.pad_id, stopping_criteria=[stop], use_cache=True,
                    **self._cache_for(cache, len(idx)))
                for row, i in zip(gen[:, n_pre + width:].tolist(), idx):
                    out[i] = self.tok.decode(row, skip_special_tokens=True)
                bar.update(len(idx))
        return out

    def _pairs(self, pairs: list[tuple[str, str]]) -> tuple[list[list[int]], list[int]]:
        """Token ids of context + continuation, and the context's length (lm-eval's encoding rules)."""
        wholes, ctx_lens = [], []
        for ctx, cont in pairs:
            n_sp = len(ctx) - len(ctx.rstrip())
            if n_sp:
                ctx, cont = ctx[:-n_sp], ctx[-n_sp:] + cont
            whole = self.encode(ctx + cont)
            c = len(self.encode(ctx))
            if c < 1 or c >= len(whole):
                raise UserError(f"empty context or continuation while scoring {cont!r}",
                                fix="check the task's doc_to_text and doc_to_choice / doc_to_target")
            wholes.append(whole)
            ctx_lens.append(c)
        return wholes, ctx_lens

    def loglikelihood(self, pairs: list[tuple[str, str]], desc: str = "",
                      progress: bool = False) -> list[tuple[float, bool]] | None:
        """(sum of log-probabilities of each continuation given its context, whether greedy decoding would
        produce it) for each pair."""
        import torch

        wholes, ctx_lens = self._pairs(pairs)
        if not self._fits([len(w) for w in wholes], 0, desc):
            return None
        # the last context token is always computed in the batch, so its logits are there
        n_pre, cache = self._prefix(wholes, min(ctx_lens) - 1)
        order = sorted(range(len(wholes)), key=lambda i: -len(wholes[i]))
        out: list[tuple[float, bool]] = [(0.0, False)] * len(wholes)
        with self._bar(len(wholes), desc, progress) as bar, torch.no_grad():
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                suf = [wholes[i][n_pre:-1] for i in idx]  # the last token is only a target
                width = max(len(s) for s in suf)
                ids = torch.tensor([s + [self.pad_id] * (width - len(s)) for s in suf], device=self.device)
                mask = torch.tensor([[1] * n_pre + [1] * len(s) + [0] * (width - len(s)) for s in suf],
                                    device=self.device)
                logits = self.model(input_ids=ids, attention_mask=mask, use_cache=cache is not None,
                                    **self._cache_for(cache, len(idx))).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
                for row, i in enumerate(idx):
                    w, c = wholes[i], ctx_lens[i]
                    tgt = torch.tensor(w[c:], device=self.device)
                    pos = torch.arange(c - 1 - n_pre, len(w) - 1 - n_pre, device=self.device)
                    out[i] = (float(logp[row, pos, tgt].sum()), bool((logp[row, pos].argmax(-1) == tgt).all()))
                bar.update(len(idx))
        return out


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
