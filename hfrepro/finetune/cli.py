"""`hfrepro finetune {prepare-data,create,get,follow,list,cancel,resume}`, `hfrepro chat` and `hfrepro complete`.

The hosted fine-tuning workflow, locally; a job is a run of the sft recipe (`hfrepro sft`) in its own folder:

    hfrepro finetune prepare-data -f guide.txt                  # -> guide.jsonl, checked -> guide_prepared.jsonl
    hfrepro finetune create -t guide_prepared.jsonl -m smollm2-135m-instruct --method lora --background
    hfrepro finetune get ft-lora-3fa9c1                         # the job's details (JSON)
    hfrepro finetune follow ft-lora-3fa9c1                      # queue, "Completed epoch 1/3", uploaded model ...
    hfrepro finetune list
    hfrepro complete --model ft-lora-3fa9c1 -p "Neural Studio is"   # completion style
    hfrepro chat --model ft-lora-3fa9c1                         # multi-turn, streamed

Options are snake_case, as the recipe's (`--max_steps`, `--learning_rate`, ...); the dashed spellings work too.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import tempfile
from pathlib import Path

from hfrepro.errors import UserError, run_main
from hfrepro.finetune import jobs, jsonl
from hfrepro.finetune.build_data import DICTIONARY
from hfrepro.finetune.chat import ChatSession, complete, repl, resolve_model
from hfrepro.finetune.sft import METHODS
from hfrepro.models import load_causal_lm, load_tokenizer, resolve
from hfrepro.report import md_table

DEFAULT_MODEL = "smollm2-135m-instruct"


def _opt(p: argparse.ArgumentParser, *names: str, **kw) -> None:
    """An option under its snake_case name(s) and the same with dashes (`--max_steps`, `--max-steps`)."""
    spelled = []
    for n in names:
        spelled += [n] + ([n.replace("_", "-")] if n.startswith("--") and "_" in n else [])
    p.add_argument(*spelled, **kw)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model on your data: prepare-data, create, get, follow, list",
                       description="The hosted fine-tuning workflow, locally: turn a txt/csv file into JSONL, check "
                                   "and fix it, train (full | head | lora with the sft recipe, TRL's SFTTrainer) in "
                                   "the foreground or background, get a job's details, follow its events, list "
                                   "jobs; then `hfrepro complete` / `hfrepro chat` with the result. Stage 7's "
                                   "comparison: `hfrepro reproduce --stages finetune`.")
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])
    s = p.add_subparsers(dest="finetune_cmd", metavar="{prepare-data,create,get,follow,list,cancel,resume}")
    _register_prepare(s)
    _register_create(s)
    _register_jobs(s)
    _register_chat(sub)
    _register_complete(sub)


def _register_prepare(s) -> None:
    pd = s.add_parser("prepare-data", help="txt/csv -> JSONL; check it; report every problem by line; write the fixes",
                      description="A .txt or .csv/.tsv file is first converted to <name>.jsonl (txt: blank-line "
                                  "separated blocks; 'Prompt:'/'Completion:', 'Q:'/'A:' or 'User:'/'Assistant:' "
                                  "labels, a heading over a paragraph, or plain paragraphs; csv: a header with "
                                  "prompt,completion or question,answer or text). Then checks prompt/completion, "
                                  "chat (messages) or plain-text JSONL: invalid JSON, missing or empty "
                                  "fields, wrong types, duplicates, examples longer than the model's context, "
                                  "inconsistent roles. Writes the examples it can keep, fixed, to "
                                  "<name>_prepared.jsonl. The input file is never modified.")
    _opt(pd, "-f", "--file", required=True,
         help="the .jsonl, .txt, .csv or .tsv file to prepare (`dictionary`: the shipped example)")
    _opt(pd, "--jsonl", default=None, help="where a .txt/.csv file's conversion goes (default: <name>.jsonl next "
                                          "to it; an existing different file is never overwritten)")
    _opt(pd, "-o", "--output", default=None, help="where to write the prepared file "
                                                  "(default: <name>_prepared.jsonl next to the input)")
    _opt(pd, "-m", "--model", "--model_name_or_path", dest="model", default=DEFAULT_MODEL,
         help="model whose tokenizer counts tokens and whose context bounds examples "
              f"(default {DEFAULT_MODEL}; 'none' skips the token checks)")
    _opt(pd, "--max_length", type=int, default=512,
         help="training max_length: longer examples get a warning (they would be truncated)")
    _opt(pd, "--check", action="store_true", help="only report; write nothing; exit 1 if errors")
    pd.set_defaults(func=_prepare)


def _register_create(s) -> None:
    c = s.add_parser("create", help="train on a prepared JSONL file (full | head | lora)",
                     description="Fine-tune with the sft recipe (TRL's SFTTrainer). lora: PEFT adapters (base "
                                 "frozen); head: only the output end (untied lm_head + final norm); full: every "
                                 "parameter. The run folder runs/finetune/RUN_ID is the model's folder (or the LoRA "
                                 "adapter's).")
    _opt(c, "-t", "--training_file", required=True)
    _opt(c, "-v", "--validation_file", default=None)
    _opt(c, "-m", "--model", "--model_name_or_path", dest="model", default=DEFAULT_MODEL,
         help=f"base model (default {DEFAULT_MODEL})")
    _opt(c, "--method", choices=METHODS, default="lora")
    _opt(c, "--num_train_epochs", "--epochs", type=float, default=3.0, help="passes over the training file (3)")
    _opt(c, "--max_steps", type=int, default=-1, help="stop after this many steps (overrides the epochs)")
    _opt(c, "--learning_rate", "--lr", type=float, default=None,
         help="default: " + ", ".join(f"{v:g} ({k})" for k, v in jobs.DEFAULT_LR.items()))
    _opt(c, "--per_device_train_batch_size", "--batch_size", type=int, default=8)
    _opt(c, "--gradient_accumulation_steps", "--grad_accum", type=int, default=1)
    _opt(c, "--max_length", type=int, default=512, help="longer examples are truncated")
    _opt(c, "--lora_r", type=int, default=8)
    _opt(c, "--lora_alpha", type=int, default=16)
    _opt(c, "--lora_dropout", type=float, default=0.05)
    _opt(c, "--lora_target_modules", default="attention", help="attention | all-linear | a,b,c")
    _opt(c, "--merge", action="store_true", help="lora: save merged full weights (the adapter in adapter/)")
    _opt(c, "--seed", type=int, default=0)
    _opt(c, "--save_steps", type=int, default=0, help="checkpoint every N steps (default: every epoch)")
    _opt(c, "--threads", type=int, default=0, help="torch threads (default: $HFREPRO_THREADS or all cores)")
    _opt(c, "--name", default=None, help="run id (default: ft-<method>-<random>); re-using it resumes")
    _opt(c, "--runs_dir", default=None, help="folder of runs (default runs/finetune)")
    _opt(c, "-b", "--background", action="store_true",
         help="run detached; watch it with `hfrepro finetune follow RUN_ID`")
    _opt(c, "--overwrite", action="store_true", help="start the named run afresh")
    c.set_defaults(func=_create)


def _register_jobs(s) -> None:
    g = s.add_parser("get", help="a job's details: status, model, hyper-parameters, files, metrics, events (JSON)")
    g.add_argument("run_id")
    _opt(g, "--runs_dir", default=None)
    g.set_defaults(func=_get)
    for name, help_, func in (("follow", "stream a job's events until it ends (queue, \"Completed epoch 1/3\", "
                                         "uploaded model and result file)", _follow),
                              ("cancel", "stop a background job (it can be resumed)", _cancel),
                              ("resume", "continue a failed or cancelled job from its last checkpoint", _resume)):
        p = s.add_parser(name, help=help_)
        p.add_argument("run_id")
        _opt(p, "--runs_dir", default=None)
        if name == "resume":
            _opt(p, "-b", "--background", action="store_true")
        p.set_defaults(func=func)
    ls = s.add_parser("list", help="the fine-tuning runs and their status")
    _opt(ls, "--runs_dir", default=None)
    ls.set_defaults(func=_list)


def _register_chat(sub) -> None:
    ch = sub.add_parser("chat", help="multi-turn chat with a model or fine-tuning run (streamed)",
                        description="Chat using the model's chat template; the conversation is kept across turns. "
                                    "Commands: /reset, /system TEXT, /history, /help, /exit.")
    _opt(ch, "--model", "--model_name_or_path", dest="model", default=DEFAULT_MODEL,
         help="a run id, run folder, model/adapter folder or model name")
    _opt(ch, "--system", default=None, help="system prompt (default: the model's own)")
    _opt(ch, "--max_new_tokens", type=int, default=256)
    _opt(ch, "--temperature", type=float, default=0.2, help="0 = greedy")
    _opt(ch, "--top_p", type=float, default=0.9)
    _opt(ch, "--seed", type=int, default=0)
    _opt(ch, "-e", "--message", action="append", default=None,
         help="scripted turn (repeatable; commands like /reset work too); no interactive prompt")
    _opt(ch, "--runs_dir", default=None)
    ch.set_defaults(func=_chat)


def _register_complete(sub) -> None:
    c = sub.add_parser("complete", help="continue a prompt with a model or fine-tuned run (completion style)",
                       description="The prompt is continued as written, with no chat template (like the hosted "
                                   "completions.create): use it with models fine-tuned on prompt/completion pairs "
                                   "or plain text, ending the prompt as your training prompts ended.")
    _opt(c, "-m", "--model", "--model_name_or_path", dest="model", required=True,
         help="a run id (ft-...), run folder, model/adapter folder or model name")
    _opt(c, "-p", "--prompt", required=True, help="the text to continue")
    _opt(c, "-M", "--max_tokens", type=int, default=16, help="tokens to generate (16)")
    _opt(c, "-t", "--temperature", type=float, default=0.0, help="0 = greedy, the same text every time (default)")
    _opt(c, "-P", "--top_p", type=float, default=1.0)
    _opt(c, "-n", type=int, default=1, help="how many completions")
    _opt(c, "--stop", action="append", default=None, help="stop at this text (repeatable)")
    _opt(c, "--seed", type=int, default=0)
    _opt(c, "--runs_dir", default=None)
    c.set_defaults(func=_complete)


def _quiet() -> None:
    import os
    import warnings
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
    from transformers.utils import logging as tlog
    tlog.set_verbosity_error()


def _prepare(args) -> int:
    src = Path(args.file)
    if args.file == "dictionary" and not src.exists():  # the shipped example, by name, from any directory
        src = DICTIONARY
    conv = None
    if src.suffix.lower() in jsonl.CONVERTIBLE:          # step 1: txt/csv -> JSONL
        conv = jsonl.convert(src)
        converted = Path(args.jsonl) if args.jsonl else src.with_suffix(".jsonl")
        if args.check:
            converted = Path(tempfile.mkdtemp()) / converted.name
        jsonl.write_converted(conv, converted)
        print(jsonl.render_conversion(conv, converted) + "\n")
        src = converted
    out = None if args.check else Path(args.output) if args.output else jsonl.default_output(src)
    if out is not None and out.resolve() == src.resolve():
        raise UserError("the output file is the input file", where=str(src),
                        fix="prepare-data never modifies its input: choose another -o")
    tok = context = None
    if args.model and args.model != "none":
        _quiet()
        path = resolve(args.model)
        tok = load_tokenizer(path)
        context = _context(path)
    rep = jsonl.check_file(src, tokenizer=tok, context=context, max_length=args.max_length,
                           tokenizer_name=Path(str(args.model)).name)
    if conv is not None:
        jsonl.locate(rep, conv)                          # problems at the .txt/.csv's own lines
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
        model = args.model if args.model and args.model != "none" else DEFAULT_MODEL
        print(f"\nNext: hfrepro finetune create -t {out} -m {model} --method lora")
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


def start(run: Path, background: bool) -> None:
    """Run the job of `run` here, or detached: `python -m hfrepro.finetune.cli RUN` (see `_job_main`)."""
    if background:
        jobs.launch(run, [sys.executable, "-m", "hfrepro.finetune.cli", str(run.resolve())])
    else:
        jobs.execute(run, train=_sft_cli(), echo=True)


def _sft_cli():
    """The sft recipe's `cli` (imported by name, as `hfrepro sft` does: TRL loads only when a job runs)."""
    return importlib.import_module("hfrepro.recipes.sft").cli


def _create(args) -> int:
    _quiet()
    req = jobs.JobRequest(
        training_file=args.training_file, validation_file=args.validation_file, model=args.model, method=args.method,
        num_train_epochs=args.num_train_epochs, max_steps=args.max_steps, learning_rate=args.learning_rate,
        per_device_train_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps, max_length=args.max_length,
        lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        lora_target_modules=args.lora_target_modules, merge=args.merge, seed=args.seed, save_steps=args.save_steps,
        threads=args.threads)
    run = jobs.create(req, base=args.runs_dir, name=args.name, background=args.background, overwrite=args.overwrite)
    start(run, args.background)
    if args.background:
        print(f"Created fine-tune: {run.name} (running in the background, pid {jobs.job_status(run).get('pid')})")
        print(f"Stream its progress:  hfrepro finetune follow {run.name}" + _rd(args))
    else:
        print(f"\nChat with it:  hfrepro chat --model {run.name}" + _rd(args))
    return 0


def _rd(args) -> str:
    return f" --runs_dir {args.runs_dir}" if getattr(args, "runs_dir", None) else ""


def _follow(args) -> int:
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


def _get(args) -> int:
    import json
    print(json.dumps(jobs.details(jobs.find_run(args.run_id, args.runs_dir)), indent=2, ensure_ascii=False))
    return 0


def _complete(args) -> int:
    _quiet()
    path = resolve_model(args.model, args.runs_dir)
    tok = load_tokenizer(path)
    choices = complete(load_causal_lm(path), tok, args.prompt, max_tokens=args.max_tokens,
                       temperature=args.temperature, top_p=args.top_p, n=args.n, stop=args.stop, seed=args.seed)
    for i, c in enumerate(choices):
        if len(choices) > 1:
            print(f"--- completion {i + 1} ({c['finish_reason']})")
        print(args.prompt + c["text"])
    return 0


def _list(args) -> int:
    runs = jobs.list_run_dirs(args.runs_dir)
    if not runs:
        print(f"no fine-tuning runs in {jobs.runs_dir(args.runs_dir)}")
        return 0
    print(md_table([jobs.summary(r) for r in runs], digits=4))
    return 0


def _cancel(args) -> int:
    run = jobs.find_run(args.run_id, args.runs_dir)
    job = jobs.cancel(run)
    print(f"{run.name}: {job.get('status')}. Resume later with: hfrepro finetune resume {run.name}" + _rd(args))
    return 0


def _resume(args) -> int:
    _quiet()
    run = jobs.requeue(jobs.find_run(args.run_id, args.runs_dir), background=args.background)
    start(run, args.background)
    if args.background:
        print(f"Resumed {run.name} in the background: hfrepro finetune follow {run.name}" + _rd(args))
    return 0


def _chat(args) -> int:
    _quiet()
    session = ChatSession.load(args.model, runs_dir=args.runs_dir, system=args.system,
                               max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                               seed=args.seed)
    return repl(session, messages=args.message)


def _job_main(argv: list[str]) -> int:
    """A background job's process: `python -m hfrepro.finetune.cli RUN_DIR`; SIGTERM (cancel) stops it."""
    def _term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    _quiet()
    try:
        jobs.execute(Path(argv[0]), train=_sft_cli(), echo=False)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    run_main(lambda: _job_main(sys.argv[1:]))
