"""PPO against a trained reward model, with TRL's `PPOTrainer` (`trl.experimental.ppo`, trl 1.12).

Four models, as in InstructGPT: the **policy** (SFT model + LoRA, trained), a **separate frozen reference**
(the SFT model, for the KL penalty), a **value model** (critic, initialised from the reward model, trained) and
the **reward model** (frozen). TRL does the rollouts, GAE, the clipped surrogate and the clipped value loss;
this module adds what a user needs around it:

- per-step logs (reward, KL, entropy, clip fraction, value loss, ...) in `log.jsonl` and sample generations
  of every step in `samples.jsonl` (the rollouts PPO itself drew, with their reward-model scores);
- checkpoints of the trainable weights + optimizer every `save_steps`, and resume from the last one
  (TRL's `PPOTrainer.train()` has no `resume_from_checkpoint`: we restore the weights and the optimizer, and
  run the remaining updates with the learning-rate schedule continued where it stopped);
- saving the policy under several processes (`trainer.save_model()` fails there, STACK.md): the unwrapped
  policy is merged and saved on the main process;
- the time spent generating, measured around the policy's `generate`.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from hfrepro.errors import UserError

PPO_LOG_KEYS = {
    "objective/scores": "reward",
    "objective/kl": "kl",
    "objective/rlhf_reward": "rlhf_reward",
    "objective/entropy": "entropy",
    "policy/entropy_avg": "token_entropy",
    "policy/clipfrac_avg": "clipfrac",
    "loss/value_avg": "value_loss",
    "loss/policy_avg": "policy_loss",
    "policy/approxkl_avg": "approxkl",
    "val/clipfrac_avg": "value_clipfrac",
    "val/ratio": "ratio",
    "val/num_eos_tokens": "num_eos",
}


def prompt_dataset(tok, rows: list[dict]):
    """PPOTrainer wants a tokenised dataset with `input_ids` (left padding is done by its collator)."""
    from datasets import Dataset

    from hfrepro.rlhf.prefs import encode_prompt
    return Dataset.from_dict({"input_ids": [encode_prompt(tok, r["prompt"]) for r in rows]})


class GenerationTimer:
    """Wraps `model.generate` to time it and keep the last batch of generated ids (the PPO rollouts)."""

    def __init__(self, model):
        self.model, self.seconds, self.cpu_seconds, self.calls, self.last = model, 0.0, 0.0, 0, None
        self._orig = model.generate

        def generate(*a, **kw):
            t0, c0 = time.perf_counter(), time.process_time()
            out = self._orig(*a, **kw)
            self.seconds += time.perf_counter() - t0
            self.cpu_seconds += time.process_time() - c0
            self.calls += 1
            self.last = (kw.get("input_ids"), kw.get("attention_mask"),
                         out.sequences if hasattr(out, "sequences") else out)
            return out
        model.generate = generate


def ppo_callbacks(run, tok, reward_model, timer: GenerationTimer, step_offset: int, samples_per_step: int,
                  saver=None):
    """on_log: per-step metrics -> log.jsonl (+ NaN stop); on_step_end: samples.jsonl and checkpoints."""
    from transformers import TrainerCallback

    from hfrepro.rlhf.models import score
    from hfrepro.training import TrainingDiverged

    class PPOLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            for k in ("objective/scores", "loss/policy_avg", "loss/value_avg"):
                v = logs.get(k)
                if v is not None and not math.isfinite(float(v)):
                    raise TrainingDiverged(f"PPO diverged: {k} is {v} at step {state.global_step + step_offset}",
                                           where=str(run.path), fix="lower the learning rate and run again")
            if state.is_world_process_zero and "objective/scores" in logs:
                rec = {"step": state.global_step + step_offset, "episode": logs.get("episode"),
                       "gen_seconds": round(timer.seconds, 3), "lr": logs.get("lr")}
                rec.update({short: logs[k] for k, short in PPO_LOG_KEYS.items() if k in logs})
                run.log(rec)

        def on_step_end(self, args, state, control, **kw):
            step = state.global_step + step_offset
            if state.is_world_process_zero and timer.last is not None and samples_per_step:
                q, mask, seq = timer.last
                n = min(samples_per_step, seq.shape[0])
                ctx = q.shape[1]
                resp = [_cut_at_eos(seq[i, ctx:].tolist(), tok) for i in range(n)]
                prompts = [q[i][mask[i].bool()].tolist() if mask is not None else
                           [t for t in q[i].tolist() if t != tok.pad_token_id] for i in range(n)]
                scores = score(reward_model, [p + r for p, r in zip(prompts, resp)], tok.pad_token_id)
                with open(run.path / "samples.jsonl", "a", encoding="utf-8") as f:
                    for p, r, s in zip(prompts, resp, scores):
                        f.write(json.dumps({"step": step, "prompt": _question(tok, p),
                                            "response": tok.decode(r, skip_special_tokens=True),
                                            "ended": bool(r and r[-1] == tok.eos_token_id), "reward": round(s, 4)},
                                           ensure_ascii=False) + "\n")
            if saver is not None and args.save_steps and step % int(args.save_steps) == 0 and \
                    step < state.max_steps + step_offset:
                saver(step)

    return [PPOLog()]


def _cut_at_eos(ids: list[int], tok) -> list[int]:
    out = []
    for t in ids:
        if t == tok.pad_token_id:
            break
        out.append(t)
        if t == tok.eos_token_id:
            break
    return out


def _question(tok, prompt_ids: list[int]) -> str:
    text = tok.decode(prompt_ids, skip_special_tokens=False)
    # the user turn of a chat-formatted prompt, else the whole prompt
    if "<|im_start|>user\n" in text:
        text = text.split("<|im_start|>user\n")[-1].split("<|im_end|>")[0]
    return text.strip()


# --- checkpoints of the trainable state ----------------------------------------------------------------

def save_trainable(folder: Path, wrapper, optimizer, scheduler, step: int, keep: int = 2) -> Path:
    """Trainable weights of policy+value (safetensors) + optimizer/scheduler state, atomically."""
    import shutil

    import torch
    from safetensors.torch import save_file

    from hfrepro.fsutil import atomic_dir, atomic_write_json

    folder = Path(folder)
    with atomic_dir(folder / f"checkpoint-{step}") as tmp:
        save_file({k: p.detach().contiguous().cpu() for k, p in wrapper.named_parameters() if p.requires_grad},
                  str(tmp / "trainable.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        atomic_write_json(tmp / "trainer_state.json", {"global_step": step})
    old = sorted((p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                 key=lambda p: int(p.name.split("-")[-1]))
    for p in old[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return folder / f"checkpoint-{step}"


def load_trainable(ck: str | Path, wrapper, optimizer) -> int:
    import torch
    from safetensors.torch import load_file

    from hfrepro.fsutil import read_json

    ck = Path(ck)
    state = load_file(str(ck / "trainable.safetensors"))
    missing = wrapper.load_state_dict(state, strict=False)
    if missing.unexpected_keys:
        raise UserError(f"checkpoint {ck} does not match this model ({len(missing.unexpected_keys)} unknown tensors)",
                        where=str(ck), fix="pass --overwrite to start this run afresh")
    st = torch.load(ck / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(st["optimizer"])
    return int(read_json(ck / "trainer_state.json")["global_step"])


# --- the run ---------------------------------------------------------------------------------------------

LINEAR_SUFFIXES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                   "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def lora_targets(model_path: str, lora_layers: int = 0) -> str:
    """"all-linear", or the linear modules of the top `lora_layers` blocks only (comma-separated names).

    With adapters in the top blocks only, nothing below them needs a gradient, so backpropagation stops there:
    a policy update costs about one forward pass instead of three (the same trick as the reward model's frozen
    lower blocks)."""
    if not lora_layers:
        return "all-linear"
    from transformers import AutoConfig
    n = AutoConfig.from_pretrained(model_path).num_hidden_layers
    if lora_layers >= n:
        return "all-linear"
    return ",".join(f"layers.{i}.{m}" for i in range(n - lora_layers, n) for m in LINEAR_SUFFIXES)


def lora_config(r: int, alpha: int, dropout: float = 0.0, target: str = "all-linear"):
    from peft import LoraConfig
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, task_type="CAUSAL_LM",
                      target_modules="all-linear" if target == "all-linear" else target.split(","))


def train_ppo(*, run, tok, policy_path: str, reward_path: str, train_rows: list[dict], config,
              lora_r: int = 16, lora_alpha: int = 32, lora_layers: int = 0, value_path: str | None = None,
              value_trainable_layers: int = 0, samples_per_step: int = 4) -> dict:
    """Run PPO; `config` is a `PPOConfig` (output_dir = run.checkpoints). Saves the merged policy to
    run.model_dir on the main process. Returns timing and step metrics (main process) or {}."""
    import torch
    from hfrepro.rlhf.models import runtime_state
    from trl.experimental.ppo import PPOTrainer

    from hfrepro.rlhf.models import load_frozen, load_policy, load_scorer, save_complete, trainable_share

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    state = runtime_state()
    policy = load_policy(policy_path, tok)
    ref = load_frozen(policy_path, tok)                       # a separate object: never the policy itself
    reward = load_frozen(reward_path, tok, kind="scorer")
    value = load_scorer(value_path or reward_path, tok, trainable_layers=value_trainable_layers)
    peft_cfg = lora_config(lora_r, lora_alpha, target=lora_targets(policy_path, lora_layers)) if lora_r else None
    data = prompt_dataset(tok, train_rows)
    total_updates = math.ceil(config.total_episodes / (config.per_device_train_batch_size
                                                        * config.gradient_accumulation_steps * state.num_processes))

    ck = run.last_checkpoint()
    done = 0
    if ck:
        done = int(Path(ck).name.split("-")[-1])
    remaining = max(0, total_updates - done)
    episodes_left = remaining * config.per_device_train_batch_size * config.gradient_accumulation_steps \
        * state.num_processes
    if remaining == 0:
        raise UserError(f"PPO checkpoint {ck} is already at the last update", where=str(run.path),
                        fix="the stage finished but did not save its model: pass --overwrite to redo it")
    config.total_episodes = episodes_left
    config.save_strategy = "no"  # checkpoints are ours: TRL's fail under several processes (STACK.md)
    # the schedule continues where the interrupted run stopped: lr(t) for t = done .. total
    sched_total, sched_offset = total_updates, done

    timer_holder: dict = {}

    def saver(step):
        t = timer_holder["trainer"]
        if t.accelerator.is_main_process:
            save_trainable(run.checkpoints, t.accelerator.unwrap_model(t.model), t.optimizer, t.lr_scheduler, step)
        t.accelerator.wait_for_everyone()

    trainer = PPOTrainer(args=config, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                         value_model=value, train_dataset=data, eval_dataset=data.select(range(min(len(data), 8))),
                         peft_config=peft_cfg)
    timer_holder["trainer"] = trainer
    _continue_schedule(trainer, config, sched_total, sched_offset)
    if ck:
        load_trainable(ck, trainer.accelerator.unwrap_model(trainer.model), trainer.optimizer)
        torch.manual_seed(config.seed + 1000 * done + trainer.accelerator.process_index)
        if state.is_main_process:
            print(f"[ppo] resuming from {ck}: {done} of {total_updates} updates done", flush=True)
    wrapper = trainer.accelerator.unwrap_model(trainer.model)
    timer = GenerationTimer(wrapper.policy)
    for cb in ppo_callbacks(run, tok, reward, timer, done, samples_per_step if state.is_main_process else 0, saver):
        trainer.add_callback(cb)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    trainer.accelerator.wait_for_everyone()
    out: dict = {}
    if trainer.accelerator.is_main_process:
        t, n = trainable_share(wrapper.policy)
        save_complete(wrapper.policy, tok, run.model_dir)
        out = {"updates": total_updates, "updates_this_session": remaining, "resumed_from": done,
               "train_seconds": round(seconds, 2), "train_cpu_seconds": round(cpu_seconds, 2),
               "generate_seconds": round(timer.seconds, 2),
               "generate_share": round(timer.seconds / seconds, 4) if seconds else None,
               "generate_cpu_share": round(timer.cpu_seconds / cpu_seconds, 4) if cpu_seconds else None,
               "seconds_per_update": round(seconds / max(1, remaining), 3),
               "world_size": trainer.accelerator.num_processes,
               "policy_trainable_params": t, "policy_params": n}
    trainer.accelerator.wait_for_everyone()
    del trainer, policy, ref, reward, value
    return out


def _continue_schedule(trainer, config, total: int, offset: int) -> None:
    """Replace TRL's scheduler (built for the remaining updates only) by one over the whole run, shifted by
    the updates already done, so a resumed run follows the same learning-rate curve."""
    from transformers.optimization import get_scheduler
    if offset == 0:
        return
    sched = get_scheduler(config.lr_scheduler_type, trainer.optimizer, num_warmup_steps=config.get_warmup_steps(total),
                          num_training_steps=total)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": intended here
        for _ in range(offset):
            sched.step()
    trainer.lr_scheduler = sched


# --- recipes/ppo.py --------------------------------------------------------------------------------------

from dataclasses import dataclass, field  # noqa: E402


@dataclass
class PPOScriptArguments:
    dataset: str = field(default="questions-words", metadata={
        "help": "prompts: questions-words (embedded task) or a TRL preference/prompt file with a `prompt` column"})
    max_prompts: int = field(default=0, metadata={"help": "use at most this many training prompts (0: all)"})
    eval_prompts: int = field(default=32, metadata={"help": "held-out prompts for the before/after evaluation (0: skip)"})
    eval_samples: int = field(default=4, metadata={"help": "sampled answers per held-out prompt"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank of the policy (0: full fine-tuning)"})
    lora_alpha: int = field(default=32)
    lora_layers: int = field(default=0, metadata={"help": "LoRA in the top N blocks only (0: all blocks)"})
    value_model_path: str | None = field(default=None, metadata={"help": "value model init (default: the reward model)"})
    value_trainable_layers: int = field(default=4, metadata={"help": "top blocks of the value model trained (0: all)"})
    samples_per_step: int = field(default=4, metadata={"help": "rollouts written to samples.jsonl per update"})
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: cores / processes)"})
    overwrite: bool = field(default=False, metadata={"help": "start afresh if output_dir holds another run"})


def run_ppo_recipe(script: PPOScriptArguments, config) -> dict | None:
    """PPO from `config.sft_model_path` against `config.reward_model_path`; run folder `config.output_dir`."""
    from hfrepro.rlhf.models import runtime_state

    from hfrepro.config import resolved
    from hfrepro.models import resolve
    from hfrepro.rlhf import prefs
    from hfrepro.rlhf.models import load_tokenizer
    from hfrepro.rlhf.pipeline import _begin, _finish, evaluate_folder
    from hfrepro.training import RunDir, cpu_sane, setup_runtime

    setup_runtime(seed=config.seed, threads=script.threads or None)
    cpu_sane(config)
    state = runtime_state()
    from pathlib import Path as _P
    if not _P(config.reward_model_path).exists() and "/" in config.reward_model_path and \
            config.reward_model_path.startswith(("runs", ".", "/")):
        raise UserError(f"reward model not found: {config.reward_model_path}",
                        fix="train one first: python recipes/reward.py (or pass --reward_model_path)")
    policy_path, reward_path = resolve(config.sft_model_path), resolve(config.reward_model_path)
    run = RunDir(config.output_dir)
    cfg = resolved(script, config)
    if _begin(run, cfg, script.overwrite, state):
        return run.metrics() if state.is_main_process else None
    tok = load_tokenizer(policy_path)
    data = prefs.load_preferences(script.dataset, seed=config.seed)
    train = prefs.unique_prompts(data["train"])
    if script.max_prompts:
        train = train[:script.max_prompts]
    config.output_dir = str(run.checkpoints)
    m = train_ppo(run=run, tok=tok, policy_path=policy_path, reward_path=reward_path, train_rows=train,
                  config=config, lora_r=script.lora_r, lora_alpha=script.lora_alpha, lora_layers=script.lora_layers,
                  value_path=script.value_model_path and resolve(script.value_model_path),
                  value_trainable_layers=script.value_trainable_layers, samples_per_step=script.samples_per_step)
    m = _finish(run, m, state, dict(title="PPO policy (hfrepro)", tags=["ppo", "rlhf", "trl"],
                                    pipeline_tag="text-generation",
                                    description="A policy trained with TRL's PPOTrainer against a reward model, "
                                                "with a KL penalty to the starting (reference) policy."))
    if script.eval_prompts:
        test = data["test"] if "test" in data else data["validation"]
        rows = prefs.unique_prompts(test)[:script.eval_prompts]
        kw = dict(temperature=config.temperature, max_new_tokens=config.response_length,
                  missing_eos_penalty=config.missing_eos_penalty or 0.0, seed=config.seed, state=state,
                  samples=script.eval_samples)
        before = evaluate_folder(run.path / "reference", policy_path, None, reward_path, tok, rows, baseline=None, **kw)
        evaluate_folder(run.path, str(run.model_dir), policy_path, reward_path, tok, rows, baseline=before, **kw)
        if state.is_main_process:
            from hfrepro.fsutil import read_json
            ev = read_json(run.path / "eval.json")
            m = run.write_metrics({"eval": {k: v for k, v in ev.items() if k != "key"},
                                   "eval_reference": {k: v for k, v in read_json(run.path / "reference" / "eval.json").items()
                                                      if k != "key"}})
    return m if state.is_main_process else None
