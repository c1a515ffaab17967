"""Follow-up corrections and the limits of what a chat model knows, scripted and scored (no training).

ChatGPT's announcement lists "allows the user to provide follow-up corrections" among its capabilities and
"may occasionally generate incorrect information" and "limited knowledge of world and events after 2021" among
its limitations. This recipe measures the first and shows the other two, on a real chat model:

- **corrections**: the assistant (scripted) names a wrong capital; the user corrects it and asks for a sentence
  inviting a friend to the capital. Does the reply name the corrected capital? The same conversation without
  the correction is the control (hfrepro.chatgpt.corrections);
- **wrong facts**: the same model asked cold, "What is the capital of X?": how often is its first answer right?
- **knowledge cut-off**: questions whose answers change with time, answered from fixed training data (shown).

Usage:
    hfrepro followup                                  # recipes/configs/followup/default.yaml
    hfrepro followup --model runs/harmless --items 60
    hfrepro followup --budget tiny
"""

import json
from dataclasses import dataclass, field

from hfrepro import runtime
from hfrepro.chatgpt import corrections
from hfrepro.chatgpt.align import chat_tokenizer, load_policy
from hfrepro.chatgpt.plots import corrections_figure
from hfrepro.chatgpt.replies import reply_all
from hfrepro.config import OutputArguments, RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.fsutil import atomic_write_text


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default="smollm2-135m-instruct", metadata={
        "aliases": ["--model"], "help": "the chat model: embedded name, run folder, model folder or Hub id"})
    items: int = field(default=40, metadata={"help": "countries drawn (each asked with and without a correction)"})
    max_new_tokens: int = field(default=32, metadata={"help": "tokens per reply"})
    batch_size: int = field(default=32, metadata={"help": "conversations per generation batch"})
    cutoff_questions: bool = field(default=True, metadata={"help": "also answer the knowledge cut-off questions"})


def main(script_args: ScriptArguments, out_args: OutputArguments, run_args: RunArguments) -> dict:
    config = resolved(script_args, out_args, run_args)
    a, seed = script_args, out_args.seed
    if a.items < 2:
        raise UserError("--items must be at least 2 (each item's wrong answer is another item's capital)")
    runtime.setup(seed=seed, threads=run_args.threads, precision=run_args.precision)
    with runtime.Run.begin(out_args.output_dir, config, overwrite=run_args.overwrite, wait=run_args.wait) as run:
        if run.finished:
            print(f"already evaluated with this config: {run.path}/metrics.json")
            return run.metrics()
        tok = chat_tokenizer(a.model_name_or_path)
        model = load_policy(a.model_name_or_path, tok)
        items = corrections.items(corrections.capital_pairs(), a.items, seed)

        # The scripted conversations: corrected, and the control without the correction; then the cold question.
        fixed = reply_all(model, tok, [corrections.conversation(i, True) for i in items], a.max_new_tokens,
                          a.batch_size)
        unfixed = reply_all(model, tok, [corrections.conversation(i, False) for i in items], a.max_new_tokens,
                            a.batch_size)
        cold = reply_all(model, tok, [[{"role": "user", "content": corrections.QUESTION.format(**i)}]
                                      for i in items], a.max_new_tokens, a.batch_size)
        cutoff = reply_all(model, tok, [[{"role": "user", "content": q}] for q in corrections.CUTOFF_QUESTIONS],
                           a.max_new_tokens, a.batch_size) if a.cutoff_questions else []

        rows = [scored(i, f, u, c) for i, f, u, c in zip(items, fixed, unfixed, cold)]
        cut = [{"question": q, "reply": r} for q, r in zip(corrections.CUTOFF_QUESTIONS, cutoff)]
        write_outputs(run.path, rows, cut)
        metrics = run.finish(summarize(rows))
        if run.is_main:
            print(f"next answer names the right capital: {metrics['corrected_rate']:.2f} after a correction, "
                  f"{metrics['uncorrected_rate']:.2f} without; cold answers right: {metrics['cold_accuracy']:.2f}")
    return metrics


def scored(item: dict, fixed: str, unfixed: str, cold: str) -> dict:
    f, u = corrections.score(item, fixed), corrections.score(item, unfixed)
    return {**item, "corrected_reply": fixed, "uncorrected_reply": unfixed, "cold_reply": cold,
            "corrected_uses": f["uses_correction"], "corrected_repeats_wrong": f["repeats_wrong"],
            "uncorrected_uses": u["uses_correction"], "uncorrected_repeats_wrong": u["repeats_wrong"],
            "cold_right": corrections.mentions(cold, item["capital"])}


def summarize(rows: list[dict]) -> dict:
    n = len(rows)
    rate = (lambda k: sum(bool(r[k]) for r in rows) / n)
    return {"items": n, "corrected_rate": rate("corrected_uses"), "uncorrected_rate": rate("uncorrected_uses"),
            "corrected_repeats_wrong": rate("corrected_repeats_wrong"),
            "uncorrected_repeats_wrong": rate("uncorrected_repeats_wrong"), "cold_accuracy": rate("cold_right")}


def write_outputs(folder, rows: list[dict], cutoff: list[dict]) -> None:
    atomic_write_text(folder / "followup.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_text(folder / "cutoff.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in cutoff))
    corrections_figure({"after a correction": [int(r["corrected_uses"]) for r in rows],
                        "no correction": [int(r["uncorrected_uses"]) for r in rows],
                        "asked cold": [int(r["cold_right"]) for r in rows]}, folder / "corrections.png")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, OutputArguments, RunArguments), recipe="followup", argv=argv))


if __name__ == "__main__":
    run_main(cli)
