"""PPO against a trained reward model with TRL's PPOTrainer, KL-penalised to the starting policy (InstructGPT step 3).

Four models, as in InstructGPT: the policy (the starting model + LoRA, trained), a separate frozen reference
(the starting model, for the KL penalty), a value model (initialised from the reward model, trained) and the
frozen reward model. Per-update reward, KL, entropy, clip fraction and value loss go to <output_dir>/log.jsonl,
the rollouts of every update to samples.jsonl; at the end the policy is compared with its starting point on
held-out prompts (eval.json, eval_reference.json).

Usage:
    hfrepro reward && hfrepro ppo                            # recipes/configs/{reward,ppo}/default.yaml
    hfrepro ppo --model runs/rlhf/sft --reward_model_path runs/rlhf/reward
    hfrepro ppo --total_episodes 256 --kl_coef 0.1
    python recipes/ppo.py --budget tiny                      # the same code
    accelerate launch --config_file recipes/accelerate/cpu_2proc.yaml recipes/ppo.py

The whole InstructGPT order (SFT first) is recipes/rlhf.py. PPOTrainer is trl 1.12's `trl.experimental.ppo`.
"""
# ruff: noqa: E402  (TRL_EXPERIMENTAL_SILENCE must be set before trl.experimental is imported)

import os
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from trl.experimental.ppo import PPOConfig, PPOTrainer

from hfrepro import runtime
from hfrepro.config import RunArguments, parse_args, resolved
from hfrepro.errors import UserError, run_main
from hfrepro.hub import hub_request, push_folder
from hfrepro.lora import LoraArguments, lora_config
from hfrepro.models import resolve
from hfrepro.rlhf.card import write_card
from hfrepro.rlhf.evaluate import evaluate_cached
from hfrepro.rlhf.models import load_frozen, load_policy, load_scorer, load_tokenizer
from hfrepro.rlhf.ppo import PPOSession, prompt_dataset
from hfrepro.rlhf.prefs import held_out, load_preferences, unique_prompts


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
    value_model_path: str | None = field(default=None, metadata={
        "help": "value model init (default: the reward model)"})
    value_trainable_layers: int = field(default=4, metadata={"help": "top blocks of the value model trained (0: all)"})
    samples_per_step: int = field(default=4, metadata={"help": "rollouts written to samples.jsonl per update"})


def main(script_args: ScriptArguments, training_args: PPOConfig, lora_args: LoraArguments,
         run_args: RunArguments) -> dict:
    config = resolved(script_args, training_args, lora_args, run_args)
    push = hub_request(training_args, default_name="hfrepro-ppo")  # fails now, not after training
    policy_path, reward_path = check_paths(script_args, training_args)
    runtime.setup(seed=training_args.seed, threads=run_args.threads)
    runtime.cpu_sane(training_args)
    with runtime.Run.begin(training_args.output_dir, config, overwrite=run_args.overwrite,
                           resume_from_checkpoint=training_args.resume_from_checkpoint, wait=run_args.wait) as run:
        if run.finished:
            print(f"already trained with this config: {run.path}/metrics.json")
            return run.metrics()

        # Data: the prompts (tokenised with the chat template); PPO samples the responses itself.
        tok = load_tokenizer(policy_path)
        data = load_preferences(script_args.dataset, seed=training_args.seed)
        prompts = unique_prompts(data["train"])[: script_args.max_prompts or None]
        train = prompt_dataset(tok, prompts)

        # Models: the policy, a separate frozen reference, the frozen reward model, the value model.
        session = PPOSession(run, training_args)  # the updates left (a resumed run), our checkpoints
        policy = load_policy(policy_path, tok)
        ref_policy = load_frozen(policy_path, tok)
        reward = load_frozen(reward_path, tok, kind="scorer")
        value = load_scorer(resolve(script_args.value_model_path or reward_path), tok,
                            trainable_layers=script_args.value_trainable_layers)

        # Train: TRL's PPOTrainer (rollouts, GAE, clipped surrogate and value losses, KL penalty in the reward).
        trainer = PPOTrainer(args=training_args, processing_class=tok, model=policy, ref_model=ref_policy,
                             reward_model=reward, value_model=value, train_dataset=train,
                             eval_dataset=train.select(range(min(len(train), 8))),
                             peft_config=lora_config(policy, lora_args) if lora_args.lora_r else None)
        session.attach(trainer, tok, reward, samples_per_step=script_args.samples_per_step)
        trainer.train()
        metrics = session.finish(trainer, tok)  # the merged policy saved into the run folder

        # Evaluate: the policy against its starting point on held-out prompts.
        if script_args.eval_prompts:
            metrics.update(evaluate(run.path, policy_path, reward_path, tok, held_out(data), script_args,
                                    training_args))
        metrics = run.finish(metrics)
        if run.is_main:
            write_card(run.path, "ppo", metrics, config, policy_path, "hfrepro ppo --config config.yaml")
            report(metrics, run.path)
            if push:
                print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


def check_paths(script_args: ScriptArguments, training_args: PPOConfig) -> tuple[str, str]:
    """The policy and reward model folders (TRL's `sft_model_path` is not used: the policy is
    --model_name_or_path, as in every hfrepro recipe)."""
    if training_args.sft_model_path != PPOConfig.__dataclass_fields__["sft_model_path"].default:
        raise UserError("--sft_model_path is not used by this recipe", fix="name the policy with --model_name_or_path")
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
    print(f"{m['updates']} PPO updates in {m['train_seconds']:.0f}s ({m['generate_share']:.0%} generating)"
          + (f"; held-out reward {ref['reward']:.3f} -> {ev['reward']:.3f}, KL {ev['kl']:.3f}, "
             f"win-rate {ev['win_rate']:.2f}" if ev else "") + f" -> {path}")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, PPOConfig, LoraArguments, RunArguments), recipe="ppo", argv=argv))


if __name__ == "__main__":
    run_main(cli)
