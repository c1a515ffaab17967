"""What hfrepro adds around TRL's `PPOTrainer` (`trl.experimental.ppo`, trl 1.12): `PPOSession`.

TRL does the rollouts, GAE, the clipped surrogate and the clipped value loss. Around `trainer.train()` a user
also needs:

- per-step logs (reward, KL, entropy, clip fraction, value loss, ...) in `log.jsonl` and the rollouts of
  every step in `samples.jsonl` (the responses PPO itself drew, with their reward-model scores);
- checkpoints and resume. `PPOTrainer.train()` has no `resume_from_checkpoint`, and its own checkpoints fail
  under several processes (STACK.md): every `save_steps` updates the trainable weights (policy LoRA + value
  model) and the optimizer go to `checkpoint-N/` in the run folder (with a `trainer_state.json`, so
  `runtime.Run` finds it); a resumed run restores them and runs the remaining updates with the learning-rate
  schedule continued where it stopped;
- saving under several processes (`trainer.save_model()` fails there): the unwrapped policy is merged and
  saved on the main process;
- the time spent generating, measured around the policy's `generate`.

    session = PPOSession(run, training_args)            # before PPOTrainer: the updates left to run
    trainer = PPOTrainer(args=training_args, ...)
    session.attach(trainer, tok, reward_model, samples_per_step=4)
    trainer.train()
    metrics = session.finish(trainer, tok)              # the merged policy saved into the run folder

This module is the one issue 17 replaces with hfrepro's own PPO.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from pathlib import Path

from hfrepro import runtime
from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_dir, atomic_write_json, atomic_write_text, read_json
from hfrepro.lora import count_parameters
from hfrepro.rlhf.models import save_policy, score
from hfrepro.rlhf.prefs import encode_prompt

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


class PPOSession:
    """Resume, logs, samples, checkpoints and timing around one `PPOTrainer.train()` (see the module doc)."""

    def __init__(self, run: runtime.Run, config):
        """Plan the updates: all of them, or those left after `run.resume_from`. Sets `config.total_episodes`
        to the episodes left and turns TRL's own checkpoints off (ours are every `config.save_steps`)."""
        self.run = run
        per_update = (config.per_device_train_batch_size * config.gradient_accumulation_steps
                      * runtime.process_state().num_processes)
        self.total = math.ceil(config.total_episodes / per_update)
        self.done = runtime.checkpoint_step(run.resume_from) if run.resume_from else 0
        self.remaining = self.total - self.done
        if self.remaining <= 0:
            raise UserError(f"PPO checkpoint {run.resume_from} is already at the last update", where=str(run.path),
                            fix="the run finished but did not save its model: pass --overwrite to redo it")
        config.total_episodes = self.remaining * per_update
        config.save_strategy = "no"
        self.timer, self.t0, self.c0 = None, 0.0, 0.0

    def attach(self, trainer, tok, reward_model, samples_per_step: int = 4) -> None:
        """Call between building the trainer and `trainer.train()`: restore a checkpoint, hook the callbacks."""
        import torch

        if self.done:
            continue_schedule(trainer, trainer.args, self.total, self.done)
            load_trainable(self.run.resume_from, trainer.accelerator.unwrap_model(trainer.model), trainer.optimizer)
            torch.manual_seed(trainer.args.seed + 1000 * self.done + trainer.accelerator.process_index)
            if self.run.is_main:
                _truncate_samples(self.run.path / "samples.jsonl", self.done)
                print(f"[ppo] resuming from {self.run.resume_from}: {self.done} of {self.total} updates done",
                      flush=True)
        self.timer = GenerationTimer(trainer.accelerator.unwrap_model(trainer.model).policy)

        def saver(step):
            if trainer.accelerator.is_main_process:
                save_trainable(self.run.path, trainer.accelerator.unwrap_model(trainer.model), trainer.optimizer,
                               trainer.lr_scheduler, step)
            trainer.accelerator.wait_for_everyone()

        for cb in ppo_callbacks(self.run, tok, reward_model, self.timer, self.done,
                                samples_per_step if self.run.is_main else 0, saver):
            trainer.add_callback(cb)
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def finish(self, trainer, tok) -> dict:
        """After `trainer.train()`: save the merged policy into the run folder (main process); the metrics."""
        seconds, cpu_seconds = time.perf_counter() - self.t0, time.process_time() - self.c0
        acc = trainer.accelerator
        acc.wait_for_everyone()
        out: dict = {}
        if acc.is_main_process:
            policy = acc.unwrap_model(trainer.model).policy
            trainable, total = count_parameters(policy)
            save_policy(policy, tok, self.run.path)
            gen = self.timer
            out = {"updates": self.total, "updates_this_session": self.remaining, "resumed_from": self.done,
                   "train_seconds": round(seconds, 2), "train_cpu_seconds": round(cpu_seconds, 2),
                   "generate_seconds": round(gen.seconds, 2),
                   "generate_share": round(gen.seconds / seconds, 4) if seconds else None,
                   "generate_cpu_share": round(gen.cpu_seconds / cpu_seconds, 4) if cpu_seconds else None,
                   "seconds_per_update": round(seconds / max(1, self.remaining), 3),
                   "world_size": acc.num_processes, "policy_trainable_params": trainable, "policy_params": total}
        acc.wait_for_everyone()
        return out


def ppo_callbacks(run, tok, reward_model, timer: GenerationTimer, step_offset: int, samples_per_step: int,
                  saver=None):
    """on_log: per-step metrics -> log.jsonl (+ NaN stop); on_step_end: samples.jsonl and checkpoints."""
    from transformers import TrainerCallback

    class PPOLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            for k in ("objective/scores", "loss/policy_avg", "loss/value_avg"):
                if logs.get(k) is not None:
                    runtime.check_finite(float(logs[k]), state.global_step + step_offset, str(run.path))
            if state.is_world_process_zero and "objective/scores" in logs:
                rec = {"step": state.global_step + step_offset, "episode": logs.get("episode"),
                       "gen_seconds": round(timer.seconds, 3), "lr": logs.get("lr")}
                rec.update({short: logs[k] for k, short in PPO_LOG_KEYS.items() if k in logs})
                run.log(rec)

        def on_step_end(self, args, state, control, **kw):
            step = state.global_step + step_offset
            if state.is_world_process_zero and timer.last is not None and samples_per_step:
                write_samples(run.path / "samples.jsonl", step, timer.last, tok, reward_model, samples_per_step)
            if saver is not None and args.save_steps and step % int(args.save_steps) == 0 and \
                    step < state.max_steps + step_offset:
                saver(step)

    return [PPOLog()]


def write_samples(path: Path, step: int, last, tok, reward_model, n: int) -> None:
    """Append the first `n` rollouts of this step (prompt, response, reward, ended) to samples.jsonl."""
    q, mask, seq = last
    n = min(n, seq.shape[0])
    ctx = q.shape[1]
    resp = [_cut_at_eos(seq[i, ctx:].tolist(), tok) for i in range(n)]
    prompts = [q[i][mask[i].bool()].tolist() if mask is not None else
               [t for t in q[i].tolist() if t != tok.pad_token_id] for i in range(n)]
    scores = score(reward_model, [p + r for p, r in zip(prompts, resp)], tok.pad_token_id)
    with open(path, "a", encoding="utf-8") as f:
        for p, r, s in zip(prompts, resp, scores):
            f.write(json.dumps({"step": step, "prompt": _question(tok, p),
                                "response": tok.decode(r, skip_special_tokens=True),
                                "ended": bool(r and r[-1] == tok.eos_token_id), "reward": round(s, 4)},
                               ensure_ascii=False) + "\n")


def _truncate_samples(path: Path, step: int) -> None:
    """Drop the samples written after the checkpoint resumed from: the resumed run draws them again."""
    if path.is_file():
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows
                                        if r.get("step", 0) <= step))


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
    """Trainable weights of policy+value (safetensors) + optimizer/scheduler state, atomically, as
    folder/checkpoint-<step>; only the newest `keep` are kept."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    with atomic_dir(folder / f"checkpoint-{step}") as tmp:
        save_file({k: p.detach().contiguous().cpu() for k, p in wrapper.named_parameters() if p.requires_grad},
                  str(tmp / "trainable.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        atomic_write_json(tmp / "trainer_state.json", {"global_step": step})
    for p in runtime.checkpoints(folder)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return folder / f"checkpoint-{step}"


def load_trainable(ck: str | Path, wrapper, optimizer) -> int:
    import torch
    from safetensors.torch import load_file

    ck = Path(ck)
    state = load_file(str(ck / "trainable.safetensors"))
    missing = wrapper.load_state_dict(state, strict=False)
    if missing.unexpected_keys:
        raise UserError(f"checkpoint {ck} does not match this model ({len(missing.unexpected_keys)} unknown tensors)",
                        where=str(ck), fix="pass --overwrite to start this run afresh")
    st = torch.load(ck / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(st["optimizer"])
    return int(read_json(ck / "trainer_state.json")["global_step"])


def continue_schedule(trainer, config, total: int, offset: int) -> None:
    """Replace TRL's scheduler (built for the remaining updates only) by one over the whole run, shifted by
    the updates already done, so a resumed run follows the same learning-rate curve."""
    from transformers.optimization import get_scheduler

    sched = get_scheduler(config.lr_scheduler_type, trainer.optimizer, num_warmup_steps=config.get_warmup_steps(total),
                          num_training_steps=total)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": intended here
        for _ in range(offset):
            sched.step()
    trainer.lr_scheduler = sched
