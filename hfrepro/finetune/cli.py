"""`hfrepro finetune {prepare-data,create,follow,list,cancel,resume,compare}` and `hfrepro chat`.

The hosted fine-tuning workflow, locally:

    hfrepro finetune prepare-data -f data.jsonl                 # check, report by line, write data_prepared.jsonl
    hfrepro finetune create -t data_prepared.jsonl -m smollm2-135m-instruct --method lora --background
    hfrepro finetune follow ft-lora-3fa9c1                      # "Completed epoch 1/3" ...
    hfrepro finetune list
    hfrepro chat --model ft-lora-3fa9c1                         # multi-turn, streamed
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model on a JSONL file: prepare-data, create, follow, list",
                       description="The hosted fine-tuning workflow, locally: check and fix a JSONL file, train "
                                   "(full | head | lora with TRL's SFTTrainer) in the foreground or background, "
                                   "follow the job, list jobs; and the stage-5 comparison.")
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])
    s = p.add_subparsers(dest="finetune_cmd", metavar="{prepare-data,create,follow,list,cancel,resume,compare}")

    pd = s.add_parser("prepare-data", help="check a JSONL file; report every problem by line; write the fixes",
                      description="Checks prompt/completion or chat (messages) JSONL: invalid JSON, missing or empty "
                                  "fields, wrong types, duplicates, examples longer than the model's context, "
                                  "inconsistent roles. Writes the examples it can keep, fixed, to "
                                  "<name>_prepared.jsonl. The input file is never modified.")
    pd.add_argument("-f", "--file", required=True, help="the JSONL file to check")
    pd.add_argument("-o", "--output", default=None, help="where to write the prepared file "
                                                         "(default: <name>_prepared.jsonl next to the input)")
    pd.add_argument("-m", "--model", default=DEFAULT_MODEL,
                    help="model whose tokenizer counts tokens and whose context bounds examples "
                         f"(default {DEFAULT_MODEL}; 'none' skips the token checks)")
    pd.add_argument("--max-length", type=int, default=512,
                    help="training max_length: longer examples get a warning (they would be truncated)")
    pd.add_argument("--check", action="store_true", help="only report; write nothing; exit 1 if errors")
    pd.set_defaults(func=_prepare)

    c = s.add_parser("create", help="train on a prepared JSONL file (full | head | lora)",
                     description="Fine-tune with TRL's SFTTrainer. lora: PEFT adapters (base frozen); head: only the "
                                 "output end (untied lm_head + final norm); full: every parameter. The result is a "
                                 "normal model folder (or a LoRA adapter folder) in runs/finetune/RUN_ID/model.")
    c.add_argument("-t", "--training-file", required=True)
    c.add_argument("-v", "--validation-file", default=None)
    c.add_argument("-m", "--model", default=DEFAULT_MODEL, help=f"base model (default {DEFAULT_MODEL})")
    c.add_argument("--method", choices=("full", "head", "lora"), default="lora")
    c.add_argument("--epochs", type=float, default=3.0, help="passes over the training file (default 3)")
    c.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (overrides --epochs)")
    c.add_argument("--learning-rate", "--lr", type=float, default=None,
                   help="default: 1e-3 (lora), 1e-3 (head), 3e-5 (full)")
    c.add_argument("--batch-size", type=int, default=8)
    c.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    c.add_argument("--max-length", type=int, default=512, help="longer examples are truncated")
    c.add_argument("--lora-r", type=int, default=8)
    c.add_argument("--lora-alpha", type=int, default=16)
    c.add_argument("--lora-dropout", type=float, default=0.05)
    c.add_argument("--lora-target-modules", default="attention", help="attention | all-linear | a,b,c")
    c.add_argument("--merge", action="store_true", help="lora: write merged full weights to model/ (adapter/ kept)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--save-steps", type=int, default=0, help="checkpoint every N steps (default: every epoch)")
    c.add_argument("--threads", type=int, default=0, help="torch threads (default: $HFREPRO_THREADS or all cores)")
    c.add_argument("--name", default=None, help="run id (default: ft-<method>-<random>); re-using it resumes")
    c.add_argument("--runs-dir", default=None, help="folder of runs (default runs/finetune)")
    c.add_argument("-b", "--background", action="store_true",
                   help="run detached; watch it with `hfrepro finetune follow RUN_ID`")
    c.add_argument("--overwrite", action="store_true", help="start the named run afresh")
    c.set_defaults(func=_create)

    f = s.add_parser("follow", help="stream a job's log until it ends (\"Completed epoch 1/3\" ...)")
    f.add_argument("run_id")
    f.add_argument("--runs-dir", default=None)
    f.set_defaults(func=_follow)

    ls = s.add_parser("list", help="the fine-tuning runs and their status")
    ls.add_argument("--runs-dir", default=None)
    ls.set_defaults(func=_list)

    ca = s.add_parser("cancel", help="stop a background job (it can be resumed)")
    ca.add_argument("run_id")
    ca.add_argument("--runs-dir", default=None)
    ca.set_defaults(func=_cancel)

    r = s.add_parser("resume", help="continue a failed or cancelled job from its last checkpoint")
    r.add_argument("run_id")
    r.add_argument("--runs-dir", default=None)
    r.add_argument("-b", "--background", action="store_true")
    r.set_defaults(func=_resume)

    cmp_ = s.add_parser("compare", help="zero-shot vs few-shot vs head-only vs LoRA vs full on one task",
                        description="The stage-5 comparison: same task, same data, same budget; held-out accuracy, "
                                    "trainable parameters, training time and peak memory; writes a Markdown table, "
                                    "a PNG and results.json.")
    cmp_.add_argument("--budget", choices=("tiny", "default", "full"), default="default")
    cmp_.add_argument("--out", default="runs/finetune-compare")
    cmp_.add_argument("--model", default=DEFAULT_MODEL)
    cmp_.add_argument("--seed", type=int, default=0)
    cmp_.add_argument("--threads", type=int, default=0, help="torch threads (default: $HFREPRO_THREADS or all cores)")
    cmp_.set_defaults(func=_compare)

    ch = sub.add_parser("chat", help="multi-turn chat with a model or fine-tuning run (streamed)",
                        description="Chat using the model's chat template; the conversation is kept across turns. "
                                    "Commands: /reset, /system TEXT, /history, /help, /exit.")
    ch.add_argument("--model", default=DEFAULT_MODEL, help="a run id, run folder, model/adapter folder or model name")
    ch.add_argument("--system", default=None, help="system prompt (default: the model's own)")
    ch.add_argument("--max-new-tokens", type=int, default=256)
    ch.add_argument("--temperature", type=float, default=0.2, help="0 = greedy")
    ch.add_argument("--top-p", type=float, default=0.9)
    ch.add_argument("--seed", type=int, default=0)
    ch.add_argument("-e", "--message", action="append", default=None,
                    help="scripted turn (repeatable; commands like /reset work too); no interactive prompt")
    ch.add_argument("--runs-dir", default=None)
    ch.set_defaults(func=_chat)


def _quiet() -> None:
    import os
    import warnings
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
    from transformers.utils import logging as tlog
    tlog.set_verbosity_error()


def _prepare(args) -> int:
    from hfrepro.errors import UserError
    from hfrepro.finetune import jsonl

    src = Path(args.file)
    out = None if args.check else Path(args.output) if args.output else jsonl.default_output(src)
    if out is not None and out.resolve() == src.resolve():
        raise UserError("the output file is the input file", where=str(src),
                        fix="prepare-data never modifies its input: choose another -o")
    tok = context = None
    if args.model and args.model != "none":
        _quiet()
        from hfrepro.models import load_tokenizer, resolve
        path = resolve(args.model)
        tok = load_tokenizer(path)
        context = _context(path)
    rep = jsonl.check_file(src, tokenizer=tok, context=context, max_length=args.max_length,
                           tokenizer_name=Path(str(args.model)).name)
    if not rep.rows and not rep.lines:
        raise UserError("the file is empty", where=str(src),
                        fix="one JSON object per line: {\"prompt\": ..., \"completion\": ...} or {\"messages\": [...]}")
    if not rep.rows:
        print(jsonl.render(rep, None))
        raise UserError("no usable example in the file", where=str(src), fix="see the problems listed above")
    if out is not None:
        jsonl.write_prepared(rep, out)
    print(jsonl.render(rep, out))
    if out is not None:
        print(f"\nNext: hfrepro finetune create -t {out} -m {args.model} --method lora")
        return 0
    return 1 if rep.errors else 0


def _context(path: str) -> int | None:
    import json
    cfg = Path(path) / "config.json"
    if cfg.is_file():
        c = json.loads(cfg.read_text())
        c = c.get("text_config", c)
        for k in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            if isinstance(c.get(k), int):
                return c[k]
    return None


def _create(args) -> int:
    _quiet()
    from hfrepro.finetune import jobs

    req = jobs.JobRequest(training_file=args.training_file, validation_file=args.validation_file, model=args.model,
                          method=args.method, epochs=args.epochs, max_steps=args.max_steps,
                          learning_rate=args.learning_rate, batch_size=args.batch_size,
                          gradient_accumulation_steps=args.grad_accum, max_length=args.max_length,
                          lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                          lora_target_modules=args.lora_target_modules, merge=args.merge, seed=args.seed,
                          save_steps=args.save_steps, threads=args.threads)
    run = jobs.create(req, base=args.runs_dir, name=args.name, background=args.background, overwrite=args.overwrite)
    if args.background:
        print(f"Created fine-tune: {run.name} (running in the background, pid {jobs.job_status(run).get('pid')})")
        print(f"Stream its progress:  hfrepro finetune follow {run.name}" + _rd(args))
    else:
        print(f"\nChat with it:  hfrepro chat --model {run.name}" + _rd(args))
    return 0


def _rd(args) -> str:
    return f" --runs-dir {args.runs_dir}" if getattr(args, "runs_dir", None) else ""


def _follow(args) -> int:
    from hfrepro.finetune import jobs

    run = jobs.find_run(args.run_id, args.runs_dir)
    try:
        job = jobs.follow(run)
    except KeyboardInterrupt:
        print(f"\n(stopped following; the job goes on: hfrepro finetune follow {run.name})", file=sys.stderr)
        return 0
    status = job.get("status")
    if status == "succeeded":
        print(f"\nJob complete. Status: succeeded. Model: {job.get('model_dir')}")
        print(f"Try it:  hfrepro chat --model {run.name}" + _rd(args))
        return 0
    print(f"\nJob ended. Status: {status}")
    if job.get("error"):
        print(f"Last error:\n{job['error']}")
    print(f"Resume it from its last checkpoint:  hfrepro finetune resume {run.name}" + _rd(args))
    return 1


def _list(args) -> int:
    from hfrepro.finetune import jobs
    from hfrepro.report import md_table

    runs = jobs.list_run_dirs(args.runs_dir)
    if not runs:
        print(f"no fine-tuning runs in {jobs.runs_dir(args.runs_dir)}")
        return 0
    print(md_table([jobs.summary(r) for r in runs], digits=4))
    return 0


def _cancel(args) -> int:
    from hfrepro.finetune import jobs

    run = jobs.find_run(args.run_id, args.runs_dir)
    job = jobs.cancel(run)
    print(f"{run.name}: {job.get('status')}. Resume later with: hfrepro finetune resume {run.name}" + _rd(args))
    return 0


def _resume(args) -> int:
    _quiet()
    from hfrepro.finetune import jobs

    run = jobs.find_run(args.run_id, args.runs_dir)
    jobs.resume(run, background=args.background)
    if args.background:
        print(f"Resumed {run.name} in the background: hfrepro finetune follow {run.name}" + _rd(args))
    return 0


def _compare(args) -> int:
    _quiet()
    from hfrepro.finetune import compare
    from hfrepro.training import setup_runtime

    setup_runtime(seed=args.seed, threads=args.threads or None)
    res = compare.run_comparison(Path(args.out), budget=args.budget, model=args.model, seed=args.seed)
    print(res["markdown"])
    return 0


def _chat(args) -> int:
    _quiet()
    from hfrepro.finetune.chat import ChatSession, repl

    session = ChatSession.load(args.model, runs_dir=args.runs_dir, system=args.system,
                               max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                               seed=args.seed)
    return repl(session, messages=args.message)
