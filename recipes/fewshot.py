"""Zero-, one- and few-shot in-context evaluation (GPT-3): accuracy by number of demonstrations, per task.

Prompts are plain text by default (GPT-3's protocol: task line, k "question => answer" demonstrations, the
question); `--prompt_format chat` uses the model's chat template. Writes results.json, table.md,
accuracy_vs_shots.png and every prompt and answer (samples/) to --output_dir.

Usage:
    python recipes/fewshot.py                                            # SmolLM2-135M, default tasks
    python recipes/fewshot.py --tasks uppercase,capital_mc --shots 0,1,3,8 --limit 100
    python recipes/fewshot.py --model runs/clm/model --tasks my_task.yaml      # any causal LM, your own task
    python recipes/fewshot.py --model smollm2-135m-instruct --adapter runs/sft-lora/model   # base + LoRA
    python recipes/fewshot.py --prompt_format raw,chat                  # compare both prompt formats
    accelerate launch --config_file accelerate_config.yaml recipes/fewshot.py
    hfrepro fewshot --model M --tasks a,b --shots 0,1,3,8               # the same script
"""

from hfrepro.config import parse_args, resolved
from hfrepro.errors import run_main
from hfrepro.fewshot.run import FewShotArguments, run
from hfrepro.hub import HubArguments, hub_request


def main():
    args, hub = parse_args((FewShotArguments, HubArguments), config="fewshot")
    req = hub_request(args, hub, default_name="hfrepro-fewshot-results")
    results = run(args, config=resolved(args, hub), hub=req)
    from hfrepro.fewshot.evaluator import _world
    if _world()[1] != 0:
        return
    for r in results:
        print(f"{r.label}: {r.examples} scored prompts in {r.seconds:.1f} s ({r.examples_per_s:.1f}/s)")
        for row in r.table_rows():
            curve = ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in row.items() if k.endswith("-shot"))
            print(f"  {row['task']:20s} {row['metric']:12s} {curve}")


if __name__ == "__main__":
    run_main(main)
