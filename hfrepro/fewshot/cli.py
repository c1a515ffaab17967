"""`hfrepro fewshot-tasks`: list, inspect, check and export few-shot tasks.

The evaluation itself is the `fewshot` recipe: `hfrepro fewshot --model M --tasks a,b --shots 0,1,3,8`
(the same as `python recipes/fewshot.py ...`).

    hfrepro fewshot-tasks list                          # built-in tasks with their sizes
    hfrepro fewshot-tasks show uppercase --shots 3      # the task file and one real 3-shot prompt
    hfrepro fewshot-tasks check my_task.yaml            # validate a task file and its data (exit 2 if bad)
    hfrepro fewshot-tasks export-lm-eval capital_mc --out runs/lmeval-tasks   # as an lm-eval task
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("fewshot-tasks", help="stage 4: list, show, check or export few-shot task files",
                       description="Few-shot task files: list the built-in ones, show a real prompt, check your "
                                   "own task file, export a task for lm-evaluation-harness. The evaluation is "
                                   "`hfrepro fewshot --model M --tasks a,b --shots 0,1,3,8`.")
    ss = p.add_subparsers(dest="action", metavar="ACTION")
    ss.add_parser("list", help="the built-in tasks").set_defaults(func=_list)
    s = ss.add_parser("show", help="a task's file and one real prompt with k demonstrations")
    s.add_argument("task", help="built-in name or task YAML path")
    s.add_argument("--shots", type=int, default=3)
    s.add_argument("--seed", type=int, default=1234)
    s.add_argument("--index", type=int, default=0, help="which test example")
    s.set_defaults(func=_show)
    c = ss.add_parser("check", help="validate task files and their data")
    c.add_argument("tasks", nargs="+", help="task YAML paths or built-in names")
    c.set_defaults(func=_check)
    e = ss.add_parser("export-lm-eval", help="write a task as an lm-evaluation-harness task (YAML + data)")
    e.add_argument("task")
    e.add_argument("--out", required=True, help="folder for the lm-eval task (pass it to lm_eval --include_path)")
    e.add_argument("--max_shots", type=int, default=8)
    e.add_argument("--limit", type=int, default=None, help="export only the first N test examples")
    e.add_argument("--seed", type=int, default=1234)
    e.set_defaults(func=_export)
    p.set_defaults(func=lambda a: p.print_help() or 0)


def _list(args) -> int:
    from hfrepro.fewshot.tasks import load_tasks
    from hfrepro.report import md_table

    rows = []
    for t in load_tasks("all"):
        rows.append({"task": t.name, "scoring": t.scoring, "metric": ", ".join(t.metric), "test": len(t.test_rows()),
                     "demos": len(t.demo_rows()), "description": t.description})
    print(md_table(rows))
    return 0


def _show(args) -> int:
    from hfrepro.errors import UserError
    from hfrepro.fewshot.evaluator import build_prompt, demonstrations
    from hfrepro.fewshot.tasks import load_task

    t = load_task(args.task)
    rows = t.test_rows()
    if not 0 <= args.index < len(rows):
        raise UserError(f"--index {args.index} is out of range: the task has {len(rows)} test examples")
    if args.shots > len(t.demo_rows()):
        raise UserError(f"--shots {args.shots} is more than the {len(t.demo_rows())} demonstrations of {t.name!r}")
    row = rows[args.index]
    print(f"# {t.name}: {t.description}\n# file: {t.where}\n# scoring: {t.scoring}, metric: {', '.join(t.metric)}, "
          f"normalise: {', '.join(t.normalize) or '(none)'}\n# test examples: {len(rows)}, demonstrations: "
          f"{len(t.demo_rows())}\n# --- the {args.shots}-shot prompt of test example {args.index} "
          f"(between the lines) ---")
    print(build_prompt(t, demonstrations(t, args.shots, args.seed), row))
    print("# ---")
    if t.scoring == "multiple_choice":
        print(f"# choices: {t.choice_list(row)}; gold: {t.target(row)!r}")
    else:
        print(f"# expected answer: {t.target(row)!r}" + (f" (also accepted: {t.accepted(row)[1:]})"
                                                          if len(t.accepted(row)) > 1 else ""))
    return 0


def _check(args) -> int:
    from hfrepro.fewshot.tasks import load_task

    for spec in args.tasks:
        t = load_task(spec)
        s = t.splits()
        print(f"ok: {t.name} ({t.where}): {t.scoring}, metric {', '.join(t.metric)}; "
              + ", ".join(f"{k} {len(v)} rows" for k, v in s.items())
              + f"; first question: {t.question(t.test_rows()[0])!r} -> {t.target(t.test_rows()[0])!r}")
    return 0


def _export(args) -> int:
    from hfrepro.fewshot.lmeval import export_task

    path, notes = export_task(args.task, args.out, max_shots=args.max_shots, seed=args.seed, limit=args.limit)
    print(f"wrote {path}")
    for n in notes:
        print(f"note: {n}")
    name = path.stem
    print(f"run it with:\n  lm_eval --model hf --model_args pretrained=MODEL_FOLDER,dtype=float32 "
          f"--include_path {path.parent} --tasks {name} --num_fewshot 3 --device cpu --batch_size 32")
    return 0
