"""Zero-, one- and few-shot in-context learning (GPT-3): accuracy by number of demonstrations in the prompt.

GPT-3 ("Language Models are Few-Shot Learners", Brown et al. 2020) showed that a task line and k solved examples
in the prompt, with no parameter update, make a language model do a task better, the more so with more
examples. This recipe measures that: tasks in lm-evaluation-harness's task schema -> a causal LM -> hfrepro's
few-shot evaluator (batched, with the demonstrations' KV cache shared; the same prompts and scores as lm-eval)
at k = 0, 1, 3, 8, ... -> a results table, a plot of accuracy against k, every prompt and answer, a dataset
card for the results folder, and optionally a push of that folder to the Hub.

Usage:
    python recipes/fewshot.py                                       # recipes/configs/fewshot/default.yaml
    python recipes/fewshot.py --budget tiny                         # 2 tasks, k = 0 and 3, 12 examples each
    hfrepro fewshot --tasks uppercase,capital_mc --shots 0,1,3,8 --limit 100
    hfrepro fewshot --tasks path/to/my_task.yaml                    # your own lm-eval task YAML, unchanged
    hfrepro fewshot --model runs/clm --tasks uppercase              # any causal LM folder (or Hub id)
    hfrepro fewshot --model smollm2-135m-instruct --adapter runs/sft-lora   # base + LoRA adapter
    hfrepro fewshot --prompt_format raw,chat --instruction yes,no   # GPT-3 Figure 1.2's comparisons
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/fewshot.py   # shares gathered
    hfrepro fewshot --push_to_hub --hub_model_id you/fewshot-results   # the results folder as a dataset repo
"""

from dataclasses import dataclass, field
from pathlib import Path

from hfrepro import runtime
from hfrepro.config import OutputArguments, RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.fewshot.evaluator import PROMPT_FORMATS, check_arguments, evaluate
from hfrepro.fewshot.report import markdown_table, save_results, write_results_card
from hfrepro.fewshot.tasks import load_tasks
from hfrepro.hub import hub_request, push_folder
from hfrepro.models import load_causal_lm, load_tokenizer


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default="smollm2-135m-instruct", metadata={
        "aliases": ["--model"], "help": "embedded name, local folder, run folder, LoRA adapter folder or Hub id; "
                                        "comma-separated to compare several models in one plot"})
    adapter: str = field(default=None, metadata={"help": "a LoRA adapter folder applied on top of the model"})
    tasks: str = field(default="uppercase,capital_mc", metadata={
        "help": "comma-separated task names or lm-eval task YAML paths; `all` = every built-in task "
                "(`hfrepro fewshot-tasks list`)"})
    include_path: str = field(default=None, metadata={
        "help": "folders of more task YAMLs, whose tasks --tasks may name (lm-eval's --include_path)"})
    shots: str = field(default="0,1,3,8", metadata={"help": "numbers of demonstrations k, comma-separated"})
    limit: int = field(default=0, metadata={"help": "test examples per task (0 = all)"})
    demos: str = field(default="task", metadata={
        "help": "task: as each task YAML says (lm-eval's samplers); fixed: the first k of a permutation of the "
                "demonstration pool seeded by --seed; per_example: drawn per test example"})
    prompt_format: str = field(default="raw", metadata={
        "help": "raw: plain-text prompt (GPT-3's protocol); chat: the tokenizer's chat template, demonstrations "
                "as user/assistant turns; `raw,chat` runs both"})
    instruction: str = field(default="yes", metadata={
        "help": "yes: prompts start with the task's description; no: without it; `yes,no` runs both "
                "(GPT-3 Figure 1.2: natural-language prompt vs no prompt)"})
    batch_size: int = field(default=32, metadata={"help": "prompts per forward pass"})
    dtype: str = field(default="float32", metadata={"help": "float32 | bfloat16 | float16 | auto"})
    device: str = field(default=None, metadata={"help": "cpu, cuda, ... (default: cuda if available)"})
    trust_remote_code: bool = field(default=False, metadata={"help": "allow model code from the Hub"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})


def main(script_args: ScriptArguments, output_args: OutputArguments, run_args: RunArguments) -> dict:
    config = resolved(script_args, output_args, run_args)
    push = hub_request(output_args, default_name="hfrepro-fewshot-results")  # fails now, not after the work
    runtime.setup(seed=output_args.seed, threads=run_args.threads, precision=run_args.precision)
    # Tasks: lm-evaluation-harness task YAMLs; every data file is read and checked before a model loads.
    settings = evaluation_settings(script_args)     # (prompt format, with the description) pairs
    tasks, shots = check_arguments(load_tasks(script_args.tasks, include_path=script_args.include_path),
                                   script_args.shots, demos=script_args.demos, batch_size=script_args.batch_size,
                                   limit=script_args.limit or None)
    run = runtime.Run.begin(output_args.output_dir, config, overwrite=run_args.overwrite, wait=run_args.wait)
    if run.finished:
        print(f"already evaluated with this config: {run.path}/metrics.json")
        return run.metrics()

    results = []
    device = script_args.device or str(runtime.process_state().device)   # this process's device
    for name in [m.strip() for m in script_args.model_name_or_path.split(",") if m.strip()]:
        # Model: any causal LM (an embedded name, a folder, a Hub id), optionally with a LoRA adapter on top.
        tokenizer = load_tokenizer(name, trust_remote_code=script_args.trust_remote_code)
        model = load_causal_lm(name, dtype=script_args.dtype, trust_remote_code=script_args.trust_remote_code,
                               adapter=script_args.adapter)
        label = f"{name}+{Path(script_args.adapter).name}" if script_args.adapter else name
        # The evaluator: k demonstrations in the prompt, no parameter update; one pass per prompt setting.
        for prompt_format, instruction in settings:
            results.append(evaluate(
                model, tasks, shots, tokenizer=tokenizer, limit=script_args.limit or None,
                seed=output_args.seed, demos=script_args.demos, prompt_format=prompt_format,
                instruction=instruction, batch_size=script_args.batch_size,
                device=device, model_name=label, progress=script_args.progress))
            results[-1].config.update({"adapter": script_args.adapter, "dtype": script_args.dtype})
        del model

    # Results: the table, the plot, every prompt and answer, a dataset card; the folder is a dataset repo.
    metrics = {"scores": {r.label: r.to_dict()["scores"] for r in results},
               "examples_per_s": {r.label: round(r.examples_per_s, 3) for r in results},
               "seconds": {r.label: round(r.seconds, 1) for r in results}}
    if run.is_main:
        save_results(results, run.path)
        write_results_card(run.path, results, config)
        print(markdown_table(results))
        for r in results:
            print(f"{r.label}: {r.examples} scored prompts in {r.seconds:.1f} s ({r.examples_per_s:.1f}/s)")
    metrics = run.finish(metrics)
    if run.is_main and push:
        url = push_folder(run.path, push, repo_type="dataset", commit_message="few-shot evaluation results")
        print(f"pushed to {push.repo_id}: {url}")
    return metrics


def evaluation_settings(script_args: ScriptArguments) -> list[tuple[str, bool]]:
    """The (prompt format, with instruction) pairs to run, checked before anything loads."""
    formats = [f.strip() for f in script_args.prompt_format.split(",") if f.strip()]
    bad = [f for f in formats if f not in PROMPT_FORMATS]
    if bad or not formats:
        raise UserError(f"unknown prompt format(s): {', '.join(bad) or '(none)'}",
                        fix=f"use {' or '.join(PROMPT_FORMATS)}, or both: raw,chat")
    instr = [i.strip() for i in script_args.instruction.split(",") if i.strip()]
    if not instr or any(i not in ("yes", "no") for i in instr):
        raise UserError(f"--instruction must be yes, no or yes,no; got {script_args.instruction!r}")
    return [(f, i == "yes") for f in formats for i in instr]


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, OutputArguments, RunArguments), recipe="fewshot", argv=argv))


if __name__ == "__main__":
    run_main(cli)
