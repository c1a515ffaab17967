"""The logic behind recipes/sft.py: resolve the data, set up the runtime, call `train_sft`."""

from __future__ import annotations

from pathlib import Path

from hfrepro.errors import UserError


def training_data(name: str) -> list[dict]:
    """'dictionary' (the shipped chat example, with prepare-data's fixes applied and reported), 'word_class'
    (stage 5's comparison task, its train split) or a JSONL path (must be clean: see prepare-data)."""
    from hfrepro.finetune import jsonl
    from hfrepro.finetune.build_data import DICTIONARY

    if name == "dictionary":
        rep = jsonl.check_file(DICTIONARY)
        print(f"[sft] {DICTIONARY.name}: {len(rep.rows)} conversations after prepare-data's fixes "
              f"({len(rep.problems)} problems found and fixed or dropped: see `hfrepro finetune prepare-data -f "
              f"{DICTIONARY}`)")
        return rep.rows
    if name == "word_class":
        from hfrepro.fewshot import load_task
        from hfrepro.finetune.compare import TASK_FILE, training_rows
        task = load_task(str(TASK_FILE))
        return training_rows(task, len(task.demo_rows()))
    if not Path(name).is_file():
        raise UserError(f"training file not found: {name}",
                        fix="give a JSONL path, or one of the shipped sets: dictionary, word_class")
    return jsonl.load_examples(name)


def train(args, sft_config, config: dict) -> dict:
    from hfrepro.finetune.sft import LoraSettings, train_sft
    from hfrepro.training import setup_runtime

    setup_runtime(seed=sft_config.seed, threads=args.threads or None)
    rows = training_data(args.train_file)
    valid = training_data(args.validation_file) if args.validation_file else None
    if valid is not None and sft_config.eval_strategy == "no":
        sft_config.eval_strategy = "epoch"
    lora = LoraSettings(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
                        target_modules=args.lora_target_modules)
    return train_sft(args.model, rows, valid, method=args.method, run_dir=sft_config.output_dir, lora=lora,
                     merge=args.merge, sft_config=sft_config, config=config, overwrite=args.overwrite,
                     card={"datasets": [Path(args.train_file).name]})
