"""The `fewshot` recipe's arguments and logic: evaluate one or more models on tasks at several shot counts,
and write a results folder (see hfrepro/fewshot/report.py for its layout)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hfrepro.errors import UserError

DEFAULT_TASKS = "uppercase,unscramble_swap,capital_city,add_2digit,translate_en_fr,capital_mc"


@dataclass
class FewShotArguments:
    model: str = field(default="smollm2-135m-instruct", metadata={
        "help": "embedded name, local folder, run folder, LoRA adapter folder or Hub id; comma-separated to "
                "compare several models in one plot"})
    adapter: str | None = field(default=None, metadata={"help": "a LoRA adapter folder applied on top of --model"})
    tasks: str = field(default=DEFAULT_TASKS, metadata={
        "help": "comma-separated built-in task names or task YAML paths; `all` = every built-in task "
                "(`hfrepro fewshot-tasks list` shows them)"})
    shots: str = field(default="0,1,3,8", metadata={"help": "numbers of demonstrations, comma-separated"})
    limit: int = field(default=50, metadata={"help": "test examples per task (0 = all)"})
    seed: int = field(default=1234, metadata={"help": "fixes which demonstrations are drawn (same for every model)"})
    demos: str = field(default="fixed", metadata={
        "help": "fixed: the same k demonstrations for every test example of a task; per_example: drawn per example"})
    prompt_format: str = field(default="raw", metadata={
        "help": "raw: plain-text prompt (GPT-3 protocol); chat: the tokenizer's chat template, demonstrations "
                "as user/assistant turns; `raw,chat` runs both"})
    instruction: str = field(default="yes", metadata={
        "help": "yes: prompts start with the task's instruction line; no: without it; `yes,no` runs both "
                "(GPT-3 Figure 1.2: natural-language prompt vs no prompt)"})
    batch_size: int = field(default=32, metadata={"help": "prompts per forward pass"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16 | auto"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})
    output_dir: str = field(default="runs/fewshot", metadata={"help": "results folder"})
    overwrite: bool = field(default=False, metadata={"help": "reuse output_dir even if it holds another config"})
    threads: int = field(default=0, metadata={"help": "torch threads (0: all cores)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow model code from the Hub (off by default)"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})


def run(args: FewShotArguments, config: dict, hub=None) -> list:
    """Evaluate, save the results folder, return the list of FewShotResults (one per model and format)."""
    from hfrepro.fewshot.evaluator import DEMO_MODES, PROMPT_FORMATS, default_device, evaluate
    from hfrepro.fewshot.report import save_results
    from hfrepro.fewshot.tasks import load_tasks
    from hfrepro.training import RunDir, setup_runtime

    setup_runtime(seed=args.seed, threads=args.threads or None)
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    formats = [f.strip() for f in args.prompt_format.split(",") if f.strip()]
    if not models:
        raise UserError("no model given", fix="pass --model smollm2-135m-instruct (or a folder / Hub id)")
    bad = [f for f in formats if f not in PROMPT_FORMATS]
    if bad or not formats:
        raise UserError(f"unknown prompt format(s): {', '.join(bad) or '(none)'}",
                        fix=f"use {' or '.join(PROMPT_FORMATS)}, or both: raw,chat")
    instr = [i.strip() for i in args.instruction.split(",") if i.strip()]
    if not instr or any(i not in ("yes", "no") for i in instr):
        raise UserError(f"--instruction must be yes, no or yes,no; got {args.instruction!r}")
    if args.demos not in DEMO_MODES:
        raise UserError(f"unknown --demos {args.demos!r}", fix=f"use one of: {', '.join(DEMO_MODES)}")
    tasks = load_tasks(args.tasks)           # fail on a bad task file before any model is loaded
    for t in tasks:
        t.splits()
    run_dir = RunDir(Path(args.output_dir))
    run_dir.start(config, overwrite=args.overwrite)   # every process checks; they write the same config
    results = []
    for m in models:
        model = tok = None
        for fmt, ins in [(f, i) for f in formats for i in instr]:
            if model is None:
                from hfrepro.models import load_causal_lm, load_tokenizer
                tok = load_tokenizer(m, trust_remote_code=args.trust_remote_code)
                model = load_causal_lm(m, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
                                       adapter=args.adapter)
            name = m if not args.adapter else f"{m}+{Path(args.adapter).name}"
            results.append(evaluate(model, tasks, _shots(args.shots), tokenizer=tok, limit=args.limit or None,
                                    seed=args.seed, demos=args.demos, prompt_format=fmt,
                                    batch_size=args.batch_size, device=args.device or default_device(),
                                    model_name=name, progress=args.progress, instruction=ins == "yes"))
            results[-1].config.update({"adapter": args.adapter, "dtype": args.dtype})
        del model
    from hfrepro.fewshot.evaluator import _world
    if _world()[1] != 0:                     # several processes: each scored a share; the first one writes
        return results
    paths = save_results(results, run_dir.path)
    run_dir.write_metrics({"scores": {r.label: r.to_dict()["scores"] for r in results},
                           "examples_per_s": {r.label: round(r.examples_per_s, 3) for r in results},
                           "seconds": {r.label: round(r.seconds, 1) for r in results}})
    if hub is not None:
        from hfrepro.fewshot.report import write_results_card
        from hfrepro.hub import push_folder
        write_results_card(run_dir.path, results, config)
        push_folder(run_dir.path, hub, repo_type="dataset", commit_message="few-shot evaluation results (hfrepro)")
    print(f"[fewshot] wrote {paths['results']}, {paths['table']}, {paths.get('plot')}", flush=True)
    return results


def _shots(s: str) -> list[int]:
    from hfrepro.fewshot.evaluator import _check_shots
    return _check_shots(s)
