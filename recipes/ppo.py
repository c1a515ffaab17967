"""PPO against a trained reward model with hfrepro's PPOTrainer, KL-penalised to the starting policy (InstructGPT
step 3); `--algo` runs the ladder's other rungs with the same loop (reinforce, rloo, a2c).

Four models, as in InstructGPT: the policy (the starting model + LoRA, trained), the reference (the same model
with the adapter switched off), the frozen reward model, and the critic (the reward model's top blocks, trained,
on its frozen lower blocks). Per-update reward, KL, entropy, clip fraction, value loss and the variance of the
gradient estimate go to <output_dir>/log.jsonl, the rollouts of every update to samples.jsonl; at the end the
policy is compared with its starting point on held-out prompts (eval.json, eval_reference.json).

Usage:
    hfrepro reward && hfrepro ppo                            # recipes/configs/{reward,ppo}/default.yaml
    hfrepro ppo --model runs/rlhf/sft --reward_model_path runs/rlhf/reward
    hfrepro ppo --total_episodes 256 --kl_coef 0.1
    hfrepro ppo --algo rloo --num_generations 2              # REINFORCE with a leave-one-out baseline
    python recipes/ppo.py --budget tiny                      # the same code
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/ppo.py

The whole InstructGPT order (SFT first) is recipes/rlhf.py. The trainer is hfrepro/rlhf/ppo.py (TRL removed its
PPOTrainer in 1.13); its settings keep the names of trl 1.12's PPOConfig.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch

from hfrepro import runtime
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.lora import LoraArguments, lora_config
from hfrepro.models import resolve
from hfrepro.rlhf.card import write_card
from hfrepro.rlhf.evaluate import evaluate_cached, task_metrics
from hfrepro.rlhf.models import load_frozen, load_policy, load_tokenizer
from hfrepro.rlhf.ppo import PPOConfig, PPOTrainer
from hfrepro.rlhf.prefs import encode_prompt, held_out, load_preferences, unique_prompts


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default="smollm2-135m-instruct", metadata={
        "aliases": ["--model"], "help": "the policy to start from (e.g. an SFT model), also the frozen reference"})
    dataset: str = field(default="questions-words", metadata={
        "help": "prompts: questions-words (embedded task) or a TRL preference/prompt file with a `prompt` column"})
    max_prompts: int = field(default=0, metadata={"help": "use at most this many training prompts (0: all)"})
    eval_prompts: int = field(default=32, metadata={"help": "held-out prompts for the before/after evaluation "
                                                            "(0: skip)"})
    eval_samples: int = field(default=4, metadata={"help": "sampled answers per held-out prompt"})


def main(script_args: ScriptArguments, training_args: PPOConfig, lora_args: LoraArguments,
         run_args: RunArguments) -> dict:
    config = resolved(script_args, training_args, lora_args, run_args)
    push = hub_request(training_args, default_name=f"hfrepro-{training_args.algo}")  # fails now, not after training
    policy_path, reward_path = check_paths(script_args, training_args)
    runtime.setup(seed=training_args.seed, threads=run_args.threads, precision=run_args.precision)
    runtime.cpu_sane(training_args)
    with runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite,
                           resume_from_checkpoint=training_args.resume_from_checkpoint, wait=run_args.wait) as run:
        if run.finished:
            print(f"already trained with this config: {run.path}/metrics.json")
            return run.metrics()

        # Data: the prompts (tokenised with the chat template); the trainer samples the responses itself.
        tok = load_tokenizer(policy_path)
        data = load_preferences(script_args.dataset, seed=training_args.seed)
        prompts = unique_prompts(data["train"])[: script_args.max_prompts or None]

        # Models: the policy (+ LoRA; its reference is the adapter switched off) and the frozen reward model.
        policy = load_policy(policy_path, tok)
        reference = None if lora_args.lora_r else load_frozen(policy_path, tok)
        reward = load_frozen(reward_path, tok, kind="scorer")

        # Train: rollouts, KL-penalised rewards, advantages (GAE), clipped surrogate and value losses.
        torch.manual_seed(training_args.seed)  # the adapter's initialisation
        trainer = PPOTrainer(args=training_args, processing_class=tok, model=policy, ref_model=reference,
                             reward_model=reward, train_dataset=[encode_prompt(tok, r["prompt"]) for r in prompts],
                             peft_config=lora_config(policy, lora_args) if lora_args.lora_r else None, run=run,
                             rollout_metrics=task_metrics(tok, prompts))
        trainer.train(resume_from_checkpoint=run.resume_from)
        trainer.save_model(run.path)  # the adapter merged: a complete model folder
        metrics = trainer.metrics()

        # Evaluate: the policy against its starting point on held-out prompts.
        if script_args.eval_prompts:
            metrics.update(evaluate(run.path, policy_path, reward_path, tok, held_out(data), script_args,
                                    training_args))
        metrics = run.finish(metrics)
        if run.is_main:
            write_card(run.path, training_args.algo, metrics, config, policy_path, "hfrepro ppo --config config.yaml")
            report(metrics, run.path)
            if push:
                print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


def check_paths(script_args: ScriptArguments, training_args: PPOConfig) -> tuple[str, str]:
    """The policy and reward model folders."""
    rm = training_args.reward_model_path
    if not Path(rm).exists() and rm.startswith(("runs", ".", "/")):
        raise UserError(f"reward model not found: {rm}",
                        fix="train one first: hfrepro reward (or pass --reward_model_path)")
    return resolve(script_args.model_name_or_path), resolve(rm)


def evaluate(folder: Path, policy_path: str, reward_path: str, tok, test, script_args, training_args) -> dict:
    """Held-out reward, KL, win-rate and exact match of the trained policy against its starting point."""
    rows = unique_prompts(test)[: script_args.eval_prompts]
    kw = dict(reward_model=reward_path, tok=tok, rows=rows, temperature=training_args.temperature,
              max_new_tokens=training_args.response_length, seed=training_args.seed,
              missing_eos_penalty=training_args.missing_eos_penalty or 0.0, samples=script_args.eval_samples)
    before, recs = evaluate_cached(folder, model=policy_path, reference=None, name="eval_reference", **kw)
    after, _ = evaluate_cached(folder, reference=policy_path, baseline=recs, **kw)
    return {"eval": after, "eval_reference": before} if after is not None else {}


def report(m: dict, path: Path) -> None:
    ev, ref = m.get("eval") or {}, m.get("eval_reference") or {}
    print(f"{m['updates']} {m['algo'].upper()} updates in {m['train_seconds']:.0f}s "
          f"({m['generate_share']:.0%} generating)"
          + (f"; held-out reward {ref['reward']:.3f} -> {ev['reward']:.3f}, KL {ev['kl']:.3f}, "
             f"win-rate {ev['win_rate']:.2f}" if ev else "") + f" -> {path}")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, PPOConfig, LoraArguments, RunArguments), recipe="ppo", argv=argv))


if __name__ == "__main__":
    run_main(cli)
