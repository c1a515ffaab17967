"""`hfrepro fewshot-tasks`: list, show and check few-shot task files (lm-evaluation-harness task YAMLs).

The evaluation itself is the `fewshot` recipe: `hfrepro fewshot --tasks a,b --shots 0,1,3,8`.

    hfrepro fewshot-tasks list                          # built-in tasks with their sizes
    hfrepro fewshot-tasks show uppercase --shots 3      # the task file and one real 3-shot prompt
    hfrepro fewshot-tasks check my_task.yaml            # validate a task file and its data (exit 2 if bad)
    hfrepro fewshot-tasks path                          # the built-in task folder (for lm_eval --include_path)
"""

from __future__ import annotations

from hfrepro.errors import UserError
from hfrepro.fewshot.evaluator import available_demos, build_prompt, demonstrations
from hfrepro.fewshot.tasks import TASKS_DIR, load_task, load_tasks
from hfrepro.report import md_table


def register(sub) -> None:
    p = sub.add_parser("fewshot-tasks", help="stage 6: list, show or check few-shot task files",
                       description="Few-shot task files (lm-evaluation-harness task YAMLs): list the built-in "
                                   "ones, show a real prompt, check your own file. The evaluation is "
                                   "`hfrepro fewshot --tasks a,b --shots 0,1,3,8`.")
    ss = p.add_subparsers(dest="action", metavar="ACTION")
    ss.add_parser("list", help="the built-in tasks").set_defaults(func=_list)
    s = ss.add_parser("show", help="a task's file and one real prompt with k demonstrations")
    s.add_argument("task", help="built-in name or task YAML path")
    s.add_argument("--shots", type=int, default=None, help="k (default: the task's num_fewshot, else 3)")
    s.add_argument("--demos", default="task", choices=("task", "fixed", "per_example"))
    s.add_argument("--seed", type=int, default=1234)
    s.add_argument("--index", type=int, default=0, help="which test example")
    s.add_argument("--include_path", "--include-path", default=None, help="more task folders (as lm-eval's)")
    s.set_defaults(func=_show)
    c = ss.add_parser("check", help="validate task files and their data")
    c.add_argument("tasks", nargs="+", help="task YAML paths or task names")
    c.add_argument("--include_path", "--include-path", default=None, help="more task folders (as lm-eval's)")
    c.set_defaults(func=_check)
    ss.add_parser("path", help="the built-in task folder").set_defaults(func=lambda a: print(TASKS_DIR) or 0)
    p.set_defaults(func=lambda a: p.print_help() or 0)


def _list(args) -> int:
    rows = [{"task": t.name, "output_type": t.output_type, "metric": ", ".join(t.metrics),
             "test": len(t.test_rows()), "demos": available_demos(t), "pool": len(t.demo_rows()),
             "what": t.summary} for t in load_tasks("all")]
    print(md_table(rows))
    return 0


def _show(args) -> int:
    t = load_task(args.task, include_path=args.include_path)
    rows = t.test_rows()
    k = args.shots if args.shots is not None else (t.num_fewshot if t.num_fewshot is not None else 3)
    if not 0 <= args.index < len(rows):
        raise UserError(f"--index {args.index} is out of range: the task has {len(rows)} test examples")
    if k > available_demos(t, args.demos):
        raise UserError(f"--shots {k} is more than the {available_demos(t, args.demos)} demonstrations of "
                        f"{t.name!r}")
    row = rows[args.index]
    print(f"# {t.name}: {t.summary}\n# file: {t.where}\n# output_type: {t.output_type}, metrics: "
          f"{', '.join(t.metrics)}, demonstrations: {t.sampler if args.demos == 'task' else args.demos}\n"
          f"# test examples: {len(rows)}, demonstration pool: {len(t.demo_rows())}\n"
          f"# --- the {k}-shot prompt of test example {args.index} (between the lines) ---")
    print(build_prompt(t, demonstrations(t, k, args.seed, args.demos, args.index), row))
    print("# ---")
    if t.output_type == "multiple_choice":
        print(f"# choices: {t.choice_list(row)}; gold: {t.target(row)!r}")
    else:
        accepted = t.targets(row)
        print(f"# expected answer: {accepted[0]!r}" + (f" (also accepted: {accepted[1:]})" if accepted[1:] else ""))
    return 0


def _check(args) -> int:
    for spec in args.tasks:
        t = load_task(spec, include_path=args.include_path)
        s = t.splits()
        first = t.test_rows()[0]
        print(f"ok: {t.name} ({t.where}): {t.output_type}, metrics {', '.join(t.metrics)}; "
              + ", ".join(f"{k} {len(v)} rows" for k, v in s.items())
              + f"; {available_demos(t)} demonstrations ({t.sampler}); first question: {t.question(first)!r} -> "
                f"{t.target(first)!r}")
    return 0
