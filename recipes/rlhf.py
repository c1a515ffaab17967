"""InstructGPT's three steps (Ouyang et al. 2022): SFT -> reward model -> PPO with a KL penalty, evaluated.

(1) Supervised fine-tuning: LoRA on demonstrations (prompt -> preferred answer) with TRL's SFTTrainer.
(2) Reward model: a one-output sequence classifier, initialised from the SFT model, trained on chosen/rejected
    pairs with TRL's RewardTrainer (Bradley-Terry loss); held-out pairwise accuracy, per kind of mistake.
(3) RL against the frozen reward model with a KL penalty to the SFT policy: hfrepro's PPOTrainer
    (hfrepro/rlhf/ppo.py), and the ladder below PPO with the same loop and budget - REINFORCE, REINFORCE with
    a baseline (RLOO), actor-critic (A2C) - or TRL's GRPO and DPO (--algo); then every policy is evaluated on
    held-out prompts against the SFT policy: reward, KL, win-rate, exact match against the gold answers (the
    check that needs no reward model) and how often it echoes the question back (the reward hack to watch).

Task: one-word answers to questions built from the questions-words analogy pairs ("What is the capital of
Greece?" -> "Athens"), data_cards/qw-prefs.md; or your own pairs in TRL's preference format.

Usage:
    hfrepro rlhf                                     # recipes/configs/rlhf/default.yaml: SFT -> RM -> the ladder
                                                     # (REINFORCE, RLOO, A2C, PPO on the same SFT + RM)
    hfrepro rlhf --budget tiny                       # a smoke run
    hfrepro rlhf --algo ppo                          # PPO alone
    hfrepro rlhf --algo all                          # REINFORCE, RLOO, A2C, PPO, GRPO, DPO on one SFT + reward model
    hfrepro rlhf --algo grpo --output_dir runs/rlhf  # adds GRPO to an earlier run (reuses SFT and reward model)
    hfrepro rlhf --eval_split validation --output_dir runs/rlhf-val   # choose settings on the validation prompts
    hfrepro rlhf --dataset my_prefs.jsonl            # your pairs: prompt/chosen/rejected (+ answer) per line
    python recipes/rlhf.py --rl_steps 24             # the same code
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/rlhf.py   # 2 CPU processes

Each step has its own run folder under output_dir (sft/, reward/, ppo/, a2c/, ...; each its model's Hub
repository): the same command again skips the finished steps and resumes an interrupted one.
"""

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, set_seed
from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer

from hfrepro import runtime
from hfrepro.config import OutputArguments, RunArguments, load_yaml, parse_args, resolved
from hfrepro.data import check_eval_split, pick_split
from hfrepro.errors import UserError, run_main
from hfrepro.fsutil import atomic_write_text, read_json
from hfrepro.hub import hub_request, push_folder
from hfrepro.lora import LoraArguments, count_parameters, lora_config
from hfrepro.models import resolve
from hfrepro.report import md_table
from hfrepro.rlhf.card import write_card
from hfrepro.rlhf.compare import summarize
from hfrepro.rlhf.evaluate import evaluate_cached, task_metrics
from hfrepro.rlhf.models import (
    freeze_below,
    layer_kwargs,
    load_frozen,
    load_policy,
    load_tokenizer,
    save_policy,
    sync_pad,
)
from hfrepro.rlhf.online import LADDER, parse_algos, reward_function
from hfrepro.rlhf.ppo import PPOConfig, PPOTrainer
from hfrepro.rlhf.prefs import (
    demonstrations,
    encode_prompt,
    held_out,
    load_preferences,
    tokenize_pairs,
    unique_prompts,
    without_prompt_len,
)
from hfrepro.rlhf.reward import describe, reward_metrics


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default="smollm2-135m-instruct", metadata={
        "aliases": ["--model"], "help": "base chat model: embedded name, folder or Hub id"})
    dataset: str = field(default="questions-words", metadata={
        "help": "questions-words (the embedded one-word-answer task) or a TRL preference file (.jsonl) with "
                "prompt/chosen/rejected (+ an optional answer column for exact match)"})
    algo: str = field(default="ppo", metadata={
        "help": "reinforce | rloo | a2c | ppo (hfrepro's trainer; `ladder`: all four) | grpo | dpo (TRL's) | all, "
                "or a comma list"})
    pairs_per_prompt: int = field(default=2, metadata={"help": "rejected answers per prompt (embedded task)"})
    eval_prompts: int = field(default=48, metadata={"help": "held-out prompts evaluated (0: all of the test split)"})
    eval_samples: int = field(default=4, metadata={"help": "sampled answers per held-out prompt (reward, KL)"})
    eval_split: str = field(default="test", metadata={
        "help": "test: the held-out prompts and pairs the claims use; validation: others (the embedded task's 10%), "
                "to choose settings on without touching the test split"})
    eval_algos: str = field(default="all", metadata={
        "help": "the trained policies evaluated on the held-out prompts: all, or a comma list (the SFT policy "
                "always is; the ladder's table also reads every algorithm's training rollouts)"})
    save_steps: int = field(default=0, metadata={"help": "checkpoint every N steps/updates (0: only at the end)"})
    # (1) SFT
    sft_examples: int = field(default=128, metadata={"help": "demonstrations (prompt -> chosen answer)"})
    sft_steps: int = field(default=16)
    sft_batch_size: int = field(default=8)
    sft_learning_rate: float = field(default=1e-3)
    # (2) reward model
    rm_init: str = field(default="sft", metadata={"help": "sft (InstructGPT: initialised from the SFT model) | base"})
    rm_pairs: int = field(default=192, metadata={"help": "training pairs (0: all)"})
    rm_epochs: float = field(default=1.0)
    rm_batch_size: int = field(default=8)
    rm_learning_rate: float = field(default=2e-4)
    rm_layers: int = field(default=16, metadata={"help": "transformer blocks kept in the reward/value model (0: all)"})
    rm_trainable_layers: int = field(default=4, metadata={"help": "top blocks trained (0: all)"})
    # (3) RL: the ladder (REINFORCE, RLOO, A2C, PPO) and GRPO; DPO: steps, batch, learning rate
    rl_steps: int = field(default=10, metadata={"help": "policy updates"})
    rl_batch_size: int = field(default=32, metadata={"help": "sampled responses per update and process"})
    rl_micro_batch_size: int = field(default=4, metadata={
        "help": "responses per forward/backward pass; the ladder's gradient variance is measured across these"})
    rl_learning_rate: float = field(default=1.5e-4)
    kl_coef: float = field(default=0.05, metadata={"help": "KL penalty (PPO kl_coef, RLOO/GRPO beta)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature in RL and evaluation"})
    max_new_tokens: int = field(default=8, metadata={"help": "response length limit"})
    missing_eos_penalty: float = field(default=1.0, metadata={"help": "subtracted from the reward of an unfinished "
                                                                      "response"})
    ppo_epochs: int = field(default=2, metadata={"help": "PPO epochs per batch of rollouts"})
    ppo_mini_batches: int = field(default=2, metadata={
        "help": "minibatches per batch: updates after the first are off-policy, so the clipped ratio matters"})
    rl_lora_layers: int = field(default=0, metadata={
        "help": "the RL adapter in the top N blocks of the policy only (0: where the SFT's was): the blocks below "
                "are frozen, run once per batch of rollouts and reused by every pass (hfrepro/rlhf/blocks.py)"})
    value_trainable_layers: int = field(default=4, metadata={
        "help": "A2C/PPO's critic: the reward model's top N blocks trained (0: all), its lower blocks shared"})
    samples_per_step: int = field(default=4, metadata={"help": "rollouts written to samples.jsonl each update"})
    num_generations: int = field(default=2, metadata={
        "help": "answers sampled per prompt in an update (every algorithm of the ladder, and GRPO)"})
    dpo_beta: float = field(default=0.1)


# What each step's result depends on (its run folder's config.yaml): its own arguments and those of the steps
# before it. A step whose folder holds the same config is reused.
SFT_KEYS = ("model_name_or_path", "dataset", "seed", "pairs_per_prompt", "sft_examples", "sft_steps",
            "sft_batch_size", "sft_learning_rate", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
            "lora_layers")
RM_KEYS = SFT_KEYS + ("rm_init", "rm_pairs", "rm_epochs", "rm_batch_size", "rm_learning_rate", "rm_layers",
                      "rm_trainable_layers")
RL_KEYS = RM_KEYS + ("algo", "rl_steps", "rl_batch_size", "rl_micro_batch_size", "rl_learning_rate", "kl_coef",
                     "temperature", "max_new_tokens", "missing_eos_penalty", "num_generations", "rl_lora_layers")
ALGO_KEYS = {"reinforce": (), "rloo": (), "a2c": ("value_trainable_layers",),
             "ppo": ("ppo_epochs", "ppo_mini_batches", "value_trainable_layers"), "grpo": (), "dpo": ("dpo_beta",)}
COMMAND = "hfrepro rlhf --config ../config.yaml   # the config.yaml of the run folder above this one"


def main(script_args: ScriptArguments, lora_args: LoraArguments, output_args: OutputArguments,
         run_args: RunArguments) -> dict:
    config = resolved(script_args, lora_args, output_args, run_args)
    algos = parse_algos(script_args.algo)
    check_batches(script_args, algos)
    evaluated = set(algos if script_args.eval_algos == "all" else parse_algos(script_args.eval_algos))
    push = hub_request(output_args, default_name=f"hfrepro-rlhf-{algos[-1]}")  # fails now, not after training
    if output_args.resume_from_checkpoint not in (None, "", "true", "True"):
        raise UserError("--resume_from_checkpoint names one checkpoint, and this recipe runs several steps",
                        fix="leave it out: each step resumes from its own last checkpoint by itself")
    check_eval_split(script_args.eval_split)
    runtime.setup(seed=output_args.seed, threads=run_args.threads, precision=run_args.precision)
    out = Path(output_args.output_dir)
    lock = take_folder(out, config, run_args.wait)  # one invocation per folder at a time
    try:
        # Data: preference pairs; their prompts with the chosen answer are the demonstrations; held-out prompts.
        tok = load_tokenizer(script_args.model_name_or_path)
        data = load_preferences(script_args.dataset, seed=output_args.seed,
                                pairs_per_prompt=script_args.pairs_per_prompt)
        prompts = unique_prompts(data["train"])
        scored = held_out(data) if script_args.eval_split == "test" else pick_split(
            data, script_args.dataset, "validation", fix="score --eval_split test, or give a dataset with that split")
        eval_rows = unique_prompts(scored)[: script_args.eval_prompts or None]
        step = Step(script_args, lora_args, output_args.seed, run_args, config, tok, out)

        # (1) SFT, (2) the reward model, initialised from the SFT model.
        sft_dir = supervised_fine_tuning(step, demonstrations(prompts[: script_args.sft_examples]))
        rm_init = sft_dir if script_args.rm_init == "sft" else resolve(script_args.model_name_or_path)
        rm_dir = reward_model(step, data["train"], scored, rm_init)

        # (3) RL against the reward model; each policy evaluated on the same held-out prompts as the SFT policy.
        evaluation = dict(reward_model=rm_dir, tok=tok, rows=eval_rows, temperature=script_args.temperature,
                          max_new_tokens=script_args.max_new_tokens, seed=output_args.seed,
                          missing_eos_penalty=script_args.missing_eos_penalty, samples=script_args.eval_samples)
        sft_eval, baseline = evaluate_cached(sft_dir, reference=None, **evaluation)
        card_with_evaluation(sft_dir, "sft", sft_eval, step)
        for algo in algos:
            policy_dir = (policy_gradient(step, algo, prompts, sft_dir, rm_dir) if algo in LADDER else
                          online(step, algo, prompts, data["train"], sft_dir, rm_dir))
            if algo in evaluated:
                policy_eval, _ = evaluate_cached(policy_dir, reference=sft_dir, baseline=baseline, **evaluation)
                card_with_evaluation(policy_dir, algo, policy_eval, step)

        # Results: one row per policy, the curves, the summary.
        summary = summarize(out, runtime.process_state().num_processes) if runtime.is_main_process() else {}
    finally:
        if lock is not None:
            runtime.unlock_folder(lock)
    if runtime.is_main_process():
        print(md_table(summary["comparison"]))
        print(f"results: {out}/comparison.md, curves: {summary.get('curves_png')}")
        if push:
            print(f"pushed to {push.repo_id}: {push_folder(out / algos[-1], push)}")
    return summary


def card_with_evaluation(folder: Path, name: str, held_out: dict | None, step) -> None:
    """Rewrite a policy's card with its held-out evaluation as the model-index (main process: the others get
    None from the evaluation)."""
    if held_out is not None:
        write_card(folder, name, read_json(folder / "metrics.json"), load_yaml(folder / "config.yaml"),
                   resolve(step.args.model_name_or_path), COMMAND, evaluation=held_out)


def check_batches(args: ScriptArguments, algos: list[str]) -> None:
    """The RL batch must split into micro-batches, answers per prompt and PPO's minibatches (checked before any
    model loads)."""
    b, micro, k, mini = args.rl_batch_size, args.rl_micro_batch_size, args.num_generations, args.ppo_mini_batches
    if micro < 1 or b % micro or b % k or ("ppo" in algos and b % (mini * micro)):
        raise UserError(f"--rl_batch_size {b} must be a multiple of --rl_micro_batch_size {micro}, of "
                        f"--num_generations {k} and (PPO) of {mini} minibatches x {micro}",
                        fix="change one of them, e.g. --rl_batch_size 16 --rl_micro_batch_size 4 --num_generations 2")
    if "rloo" in algos and k < 2:
        raise UserError("rloo needs at least 2 answers per prompt for its baseline", fix="pass --num_generations 2")


@dataclass
class Step:
    """What every step gets: the arguments, the tokenizer, the run folder holding the steps' folders."""
    args: ScriptArguments
    lora: LoraArguments
    seed: int
    run_args: RunArguments
    config: dict
    tok: object
    out: Path

    def begin(self, name: str, keys: tuple[str, ...], **extra) -> runtime.Run:
        cfg = {**{k: self.config[k] for k in keys if k in self.config}, **extra}
        if self.config.get("eval_split", "test") != "test":  # a validation run never shares a step with a test run
            cfg["eval_split"] = self.config["eval_split"]
        return runtime.Run.begin(self.out / name, cfg, overwrite=self.run_args.overwrite, wait=self.run_args.wait)

    def peft_config(self, model, layers: int = 0):
        """LoRA (lora_r 0: full fine-tuning); `layers`: in the top N blocks only (0: as --lora_layers says)."""
        if not self.lora.lora_r:
            return None
        return lora_config(model, dataclasses.replace(self.lora, lora_layers=layers) if layers else self.lora)

    def save_every(self, total: int) -> dict:
        s = self.args.save_steps
        return dict(save_strategy="steps" if s else "no", save_steps=s or total)


def take_folder(out: Path, config: dict, wait: bool) -> int | None:
    """Lock the run folder (main process) and record the arguments: `--config config.yaml` replays the run."""
    if not runtime.is_main_process():
        return None
    runtime.check_writable_folder(out)
    lock = runtime.lock_folder(out, wait)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=True, allow_unicode=True))
    return lock


def supervised_fine_tuning(step: Step, demos: list[dict]) -> Path:
    """Step 1: LoRA on demonstrations, merged into the weights: the policy RL starts from and the frozen
    reference of its KL penalty."""
    args, tok = step.args, step.tok
    with step.begin("sft", SFT_KEYS) as run:
        if run.finished:
            return run.path
        training_args = runtime.make_training_args(
            SFTConfig, output_dir=str(run.path), max_steps=args.sft_steps, learning_rate=args.sft_learning_rate,
            per_device_train_batch_size=args.sft_batch_size, lr_scheduler_type="linear", warmup_steps=0,
            max_length=128, logging_steps=1, seed=step.seed, disable_tqdm=True, **step.save_every(args.sft_steps))
        runtime.cpu_sane(training_args)
        base = resolve(args.model_name_or_path)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        trainer = SFTTrainer(model=model, args=training_args, train_dataset=Dataset.from_list(demos),
                             processing_class=tok, peft_config=step.peft_config(model), callbacks=run.callbacks())
        result = trainer.train(resume_from_checkpoint=run.resume_from)
        trainable, total = count_parameters(trainer.model)
        save_policy(trainer.accelerator.unwrap_model(trainer.model), tok, run.path, run.is_main)  # LoRA merged
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        metrics = run.finish({
            "sft_steps": trainer.state.global_step, "sft_examples": len(demos), "sft_train_loss": result.training_loss,
            "sft_first_loss": losses[0] if losses else None, "sft_final_loss": losses[-1] if losses else None,
            "sft_seconds": round(result.metrics["train_runtime"], 2), "sft_trainable_params": trainable,
            "sft_params": total, "sft_tokens_seen": int(trainer.state.num_input_tokens_seen)})
        if run.is_main:
            write_card(run.path, "sft", metrics, run.config, base, COMMAND)
    runtime.wait_for_everyone()
    return run.path


def reward_model(step: Step, train_pairs, test_pairs, init: str | Path) -> Path:
    """Step 2: a one-output classifier on the preference pairs, read at the EOS token of each response."""
    args, tok = step.args, step.tok
    with step.begin("reward", RM_KEYS) as run:
        if run.finished:
            return run.path
        pairs = train_pairs.shuffle(seed=step.seed)
        pairs = pairs.select(range(min(args.rm_pairs, len(pairs)))) if args.rm_pairs else pairs
        training_args = runtime.make_training_args(
            RewardConfig, output_dir=str(run.path), num_train_epochs=args.rm_epochs,
            per_device_train_batch_size=args.rm_batch_size, learning_rate=args.rm_learning_rate,
            lr_scheduler_type="linear", max_length=256, logging_steps=1, seed=step.seed, disable_tqdm=True,
            save_strategy="steps" if args.save_steps else "no", save_steps=max(1, args.save_steps))
        # The first rm_layers blocks of the SFT model, the top rm_trainable_layers of them trained, + a score head.
        model = AutoModelForSequenceClassification.from_pretrained(
            init, num_labels=1, dtype=torch.float32, **layer_kwargs(init, args.rm_layers))
        sync_pad(model, tok)  # the pad id is the tokenizer's, not EOS: the score is read at EOS
        freeze_below(model, args.rm_trainable_layers)
        train_ids, test_ids = tokenize_pairs(pairs, tok), tokenize_pairs(test_pairs, tok)
        trainer = RewardTrainer(model=model, args=training_args, train_dataset=without_prompt_len(train_ids),
                                processing_class=tok, callbacks=run.callbacks())
        result = trainer.train(resume_from_checkpoint=run.resume_from)
        trainer.save_model()
        metrics = run.finish({**reward_metrics(trainer, result, tok, train_ids, test_ids, run.path),
                              "rm_eval_split": args.eval_split})
        if run.is_main:
            write_card(run.path, "reward", metrics, run.config, resolve(args.model_name_or_path), COMMAND)
            print(f"[rlhf] reward model: {describe(metrics)}", flush=True)
    return run.path


def policy_gradient(step: Step, algo: str, prompts: list[dict], sft_dir: Path, rm_dir: Path) -> Path:
    """Step 3 with hfrepro's trainer: REINFORCE, RLOO, A2C or PPO, four settings of one loop on the same budget
    (hfrepro/rlhf/ppo.py). The models of InstructGPT: the policy (SFT + LoRA), the reference (the same model with
    the adapter off), the frozen reward model, and for A2C/PPO a critic grown from the reward model."""
    args, tok = step.args, step.tok
    with step.begin(algo, RL_KEYS + ALGO_KEYS[algo], algo=algo) as run:
        if run.finished:
            return run.path
        world = runtime.process_state().num_processes
        training_args = runtime.make_training_args(
            PPOConfig, output_dir=str(run.path), algo=algo, per_device_train_batch_size=args.rl_micro_batch_size,
            gradient_accumulation_steps=args.rl_batch_size // args.rl_micro_batch_size,
            total_episodes=args.rl_steps * args.rl_batch_size * world, num_generations=args.num_generations,
            num_mini_batches=args.ppo_mini_batches, num_ppo_epochs=args.ppo_epochs,
            local_rollout_forward_batch_size=args.rl_batch_size, learning_rate=args.rl_learning_rate,
            lr_scheduler_type="linear", kl_coef=args.kl_coef, temperature=args.temperature,
            response_length=args.max_new_tokens, stop_token="eos", missing_eos_penalty=args.missing_eos_penalty,
            value_trainable_layers=args.value_trainable_layers, samples_per_step=args.samples_per_step,
            save_strategy="steps" if args.save_steps else "no", save_steps=args.save_steps or 1, seed=step.seed,
            disable_tqdm=True)
        policy = load_policy(sft_dir, tok)
        reference = None if step.lora.lora_r else load_frozen(sft_dir, tok)  # with LoRA: the adapter switched off
        # The adapter's initialisation and the minibatch shuffles: the same for every algorithm, whichever rungs
        # ran before it in this invocation (or in an earlier one that trained SFT and the reward model).
        set_seed(step.seed)
        trainer = PPOTrainer(args=training_args, processing_class=tok, model=policy, ref_model=reference,
                             reward_model=load_frozen(rm_dir, tok, kind="scorer"), run=run,
                             train_dataset=[encode_prompt(tok, r["prompt"]) for r in prompts],
                             peft_config=step.peft_config(policy, args.rl_lora_layers),
                             rollout_metrics=task_metrics(tok, prompts))
        trainer.train(resume_from_checkpoint=run.resume_from)
        trainer.save_model(run.path)  # the adapter merged: a complete model folder
        metrics = run.finish(trainer.metrics())
        if run.is_main:
            write_card(run.path, algo, metrics, run.config, resolve(args.model_name_or_path), COMMAND)
    runtime.wait_for_everyone()
    return run.path


def online(step: Step, algo: str, prompts: list[dict], pairs, sft_dir: Path, rm_dir: Path) -> Path:
    """Step 3 with TRL's GRPO (samples scored by the same reward model, no value model) or DPO (offline, on the
    preference pairs)."""
    args, tok = step.args, step.tok
    with step.begin(algo, RL_KEYS + ALGO_KEYS[algo], algo=algo) as run:
        if run.finished:
            return run.path
        common = dict(output_dir=str(run.path), max_steps=args.rl_steps, per_device_train_batch_size=args.rl_batch_size,
                      learning_rate=args.rl_learning_rate, lr_scheduler_type="linear", warmup_steps=0, logging_steps=1,
                      seed=step.seed, disable_tqdm=True, **step.save_every(args.rl_steps))
        policy = load_policy(sft_dir, tok)
        if algo == "dpo":
            training_args = runtime.make_training_args(DPOConfig, beta=args.dpo_beta, max_length=128, **common)
            trainer = DPOTrainer(model=policy, ref_model=load_frozen(sft_dir, tok), args=training_args,
                                 train_dataset=pairs.select_columns(["prompt", "chosen", "rejected"]),
                                 processing_class=tok, peft_config=step.peft_config(policy), callbacks=run.callbacks())
        else:
            training_args = runtime.make_training_args(
                GRPOConfig, num_generations=args.num_generations, max_completion_length=args.max_new_tokens,
                temperature=args.temperature, top_p=1.0, beta=args.kl_coef, **common)
            reward = reward_function(load_frozen(rm_dir, tok, kind="scorer"), tok, args.missing_eos_penalty)
            trainer = GRPOTrainer(model=policy, reward_funcs=reward, args=training_args,
                                  train_dataset=Dataset.from_list([{"prompt": r["prompt"]} for r in prompts]),
                                  processing_class=tok, peft_config=step.peft_config(policy), callbacks=run.callbacks())
        c0 = time.process_time()
        result = trainer.train(resume_from_checkpoint=run.resume_from)
        cpu = time.process_time() - c0
        save_policy(trainer.accelerator.unwrap_model(trainer.model), tok, run.path, run.is_main)
        seconds, steps = result.metrics["train_runtime"], trainer.state.global_step
        metrics = run.finish({"updates": steps, "train_seconds": round(seconds, 2), "train_cpu_seconds": round(cpu, 2),
                              "seconds_per_update": round(seconds / max(1, steps), 3),
                              "world_size": trainer.accelerator.num_processes})
        if run.is_main:
            write_card(run.path, algo, metrics, run.config, resolve(args.model_name_or_path), COMMAND)
    runtime.wait_for_everyone()
    return run.path


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, LoraArguments, OutputArguments, RunArguments), recipe="rlhf",
                            argv=argv))


if __name__ == "__main__":
    run_main(cli)
