"""hfrepro's PPO for language models, and the RL ladder below it: REINFORCE -> RLOO -> A2C -> PPO.

TRL deleted its `PPOTrainer` in 1.13; this is a small one on transformers + peft + accelerate, written to be read
next to the seed's equations (hfrepro/rlhf/losses.py). Four models, as in InstructGPT:

    policy      the SFT model + a LoRA adapter (trained)
    reference   the same model with the adapter switched off (frozen): the KL penalty's pi_ref
    reward      the reward model (frozen): score(prompt, response), read at the response's last token
    critic      V(s_t): the reward model's top `value_trainable_layers` blocks, copied and trained, on top of
                its lower blocks (frozen, so computed once per rollout and shared with the reward model)

One update = one batch of rollouts, then learning from it:

    1. rollout   sample answers (KV-cached batched generation), keep log pi of each token; log pi_ref,
                 score and V(s_t) by one forward pass each; a missing EOS costs `missing_eos_penalty`
    2. rewards   r_t = -beta KL_t, + score on the last token
    3. advantage A_t by the algorithm's rung of the ladder (`algo`, losses.py):
                 reinforce  G_t (the return)              rloo  G_t - mean return of the other answers
                 a2c        r_t + gamma V_{t+1} - V_t      ppo   GAE(lambda), whitened
    4. learn     ppo: `num_ppo_epochs` passes over `num_mini_batches` minibatches with the clipped surrogate
                 and the clipped value loss; the others: one gradient step on -A log pi (+ the critic's MSE)

    trainer = PPOTrainer(args=PPOConfig(...), processing_class=tok, model=sft_model, reward_model=rm,
                         train_dataset=prompts, peft_config=LoraConfig(...))   # prompts: an `input_ids` column
    trainer.train(resume_from_checkpoint=None)     # checkpoint-N/ folders through accelerate's save_state
    trainer.save_model("runs/ppo")                 # the policy with its adapter merged: a complete model

Logged per update (`trainer.log_history`, and `log.jsonl` when a `runtime.Run` is given): reward, KL to the
reference, entropy, clip fractions, losses, and the variance of the policy-gradient estimate across the update's
micro-batches (`grad_var`, the ladder's measure; one process only).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainingArguments

from hfrepro import runtime
from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json
from hfrepro.rlhf import losses as L
from hfrepro.rlhf.blocks import (
    backbone_of,
    check_split,
    critic_from,
    critic_values,
    decoder_views,
    first_trained_block,
    shared_lower_blocks,
    upper_view,
)
from hfrepro.rlhf.models import save_policy
from hfrepro.rlhf.sampling import left_pad, sample


@dataclass(frozen=True)
class Rung:
    """One rung of the ladder: how the advantage is estimated and how the policy learns from it."""
    critic: bool          # a learned V(s_t)
    baseline: bool        # the leave-one-out mean of the other answers' returns (RLOO)
    lam: float | None     # GAE's lambda (None: the config's `lam`)
    clip: bool            # PPO's clipped surrogate and value loss, several epochs and minibatches
    whiten: bool          # advantages scaled to mean 0, variance 1 per batch


ALGOS = {
    "reinforce": Rung(critic=False, baseline=False, lam=1.0, clip=False, whiten=False),
    "rloo": Rung(critic=False, baseline=True, lam=1.0, clip=False, whiten=False),
    "a2c": Rung(critic=True, baseline=False, lam=0.0, clip=False, whiten=False),
    "ppo": Rung(critic=True, baseline=False, lam=None, clip=True, whiten=True),
}


@dataclass
class PPOConfig(TrainingArguments):
    """TrainingArguments + PPO's settings, named as in TRL 1.12's `PPOConfig` where it had them.

    Batches: each process samples `per_device_train_batch_size * gradient_accumulation_steps` responses per
    update (the local batch), in micro-batches of `per_device_train_batch_size`."""
    algo: str = field(default="ppo", metadata={"help": "the ladder: reinforce | rloo | a2c | ppo"})
    reward_model_path: str = field(default="runs/reward", metadata={"help": "the reward model (a folder)"})
    value_trainable_layers: int = field(default=4, metadata={
        "help": "the critic: the reward model's top N blocks trained (0: all), its lower blocks shared and frozen"})
    total_episodes: int | None = field(default=None, metadata={
        "help": "responses to sample in all (all processes); --max_steps N (> 0) sets N updates instead"})
    num_generations: int = field(default=1, metadata={
        "help": "answers sampled per prompt in a batch (rloo needs >= 2; the same for every algo of a ladder)"})
    num_mini_batches: int = field(default=1, metadata={"help": "PPO: minibatches per batch"})
    num_ppo_epochs: int = field(default=4, metadata={"help": "PPO: passes over each batch"})
    local_rollout_forward_batch_size: int = field(default=64, metadata={"help": "rollout forward chunk size"})
    response_length: int = field(default=53, metadata={"help": "new tokens at most"})
    stop_token: str | None = field(default="eos", metadata={"help": "eos: a response ends at EOS; none: never"})
    temperature: float = field(default=0.7, metadata={"help": "sampling temperature (also in every log-prob)"})
    missing_eos_penalty: float | None = field(default=None, metadata={
        "help": "subtracted from the score of a response that never reached EOS"})
    kl_coef: float = field(default=0.05, metadata={"help": "beta: the per-token KL penalty to the reference"})
    kl_estimator: str = field(default="k1", metadata={"help": "k1 | k3"})
    cliprange: float = field(default=0.2, metadata={"help": "PPO: epsilon of the clipped surrogate"})
    vf_coef: float = field(default=0.1, metadata={"help": "weight of the critic's loss"})
    cliprange_value: float = field(default=0.2, metadata={"help": "PPO: clip range of the value loss"})
    gamma: float = field(default=1.0, metadata={"help": "discount"})
    lam: float = field(default=0.95, metadata={"help": "PPO: GAE's lambda"})
    whiten_rewards: bool = field(default=False, metadata={"help": "whiten the per-token rewards first"})
    reward_after_eos: bool = field(default=False, metadata={
        "help": "put the score one token after EOS, as trl 1.12 did (for the correctness bench); "
                "default: on the last token of the response"})
    samples_per_step: int = field(default=4, metadata={"help": "rollouts written to samples.jsonl per update"})
    learning_rate: float = field(default=3e-6, metadata={"help": "AdamW learning rate"})
    max_grad_norm: float = field(default=0.0, metadata={"help": "gradient clipping (0: none, as in trl's PPO)"})
    logging_steps: float = field(default=1, metadata={"help": "log every update"})

    def __post_init__(self):
        super().__post_init__()
        if self.algo not in ALGOS:
            raise UserError(f"unknown algo {self.algo!r}", fix=f"use one of {', '.join(ALGOS)}")
        if self.stop_token not in ("eos", None, "none"):
            raise UserError(f"stop_token must be eos or none, not {self.stop_token!r}")
        if self.kl_estimator not in ("k1", "k3"):
            raise UserError(f"kl_estimator must be k1 or k3, not {self.kl_estimator!r}")
        if self.algo == "rloo" and self.num_generations < 2:
            raise UserError("rloo needs at least 2 answers per prompt", fix="pass --num_generations 2 (or more)")
        local = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if local % self.num_generations or local % (self.num_mini_batches * self.per_device_train_batch_size):
            raise UserError(f"the local batch ({local} responses) must split into {self.num_generations} answers "
                            f"per prompt and {self.num_mini_batches} minibatches of whole micro-batches of "
                            f"{self.per_device_train_batch_size}",
                            fix="change per_device_train_batch_size, gradient_accumulation_steps or num_mini_batches")

    @property
    def rung(self) -> Rung:
        return ALGOS[self.algo]


@dataclass
class Rollouts:
    """One batch of sampled responses and everything measured on them (rows: responses; columns: tokens)."""
    queries: torch.Tensor         # left-padded prompts
    responses: torch.Tensor       # sampled tokens, padding after EOS
    logprobs: torch.Tensor        # log pi_old(y_t | s_t) at sampling time (INVALID_LOGPROB on padding)
    ref_logprobs: torch.Tensor    # log pi_ref(y_t | s_t)
    scores: torch.Tensor          # reward model score (minus the missing-EOS penalty)
    values: torch.Tensor | None   # V(s_t) (0 on padding)
    hidden: torch.Tensor | None   # the reward model's frozen lower blocks' output, the critic's input
    policy_hidden: torch.Tensor | None  # the policy's frozen lower blocks' output (when its adapter is higher up)
    mask: torch.Tensor            # True on the response's tokens
    value_mask: torch.Tensor      # True where V(s_t) is learned
    ended: torch.Tensor           # the response reached EOS
    gen_seconds: float = 0.0
    gen_cpu_seconds: float = 0.0


class PolicyAndCritic(torch.nn.Module):
    """The trained parts in one module, so that one `accelerator.prepare` (DDP) covers both. With `split`, the
    policy's blocks below it are frozen (no adapter there): the training passes start from their cached output
    (`policy_hidden`) and run only the upper blocks."""

    def __init__(self, policy, critic=None, split: int = 0):
        super().__init__()
        self.policy, self.critic, self.split = policy, critic, split
        # plain attributes, not submodules: the views share the policy's modules (and parameters)
        self.__dict__["views"] = decoder_views(policy, split) if split else None
        self.__dict__["lm_head"] = backbone_of(policy)[1].get_output_embeddings()

    def policy_logits(self, n_response: int, policy_hidden=None, **inputs) -> torch.Tensor:
        """Logits at the positions predicting the last `n_response` tokens."""
        if policy_hidden is None:
            return self.policy(**inputs, logits_to_keep=n_response + 1, use_cache=False).logits[:, :-1]
        upper = self.views[1]
        h = upper(inputs_embeds=policy_hidden, attention_mask=inputs["attention_mask"],
                  position_ids=inputs["position_ids"], use_cache=False).last_hidden_state
        return self.lm_head(h[:, -(n_response + 1):-1])

    def forward(self, input_ids, attention_mask, position_ids, n_response: int, hidden=None, policy_hidden=None):
        logits = self.policy_logits(n_response, policy_hidden, input_ids=input_ids, attention_mask=attention_mask,
                                    position_ids=position_ids)
        values = None
        if self.critic is not None:
            values = critic_values(self.critic, hidden, attention_mask, position_ids, n_response)
        return logits, values


def forward_inputs(ids: torch.Tensor, pad_token_id: int) -> dict:
    """Attention mask and positions for a left-padded batch (pads masked, positions counted from the prompt)."""
    mask = ids != pad_token_id
    return {"input_ids": torch.masked_fill(ids, ~mask, 0), "attention_mask": mask.long(),
            "position_ids": (mask.cumsum(1) - mask.long()).clamp(min=0)}


class PPOTrainer:
    """See the module docstring. `model`: the SFT policy (a causal LM); `reward_model`: a one-output sequence
    classifier; `train_dataset`: prompts with an `input_ids` column (or a list of token lists); `peft_config`:
    the policy's LoRA (without one the whole policy trains and `ref_model` must be given); `run`: the
    `runtime.Run` whose folder gets log.jsonl, samples.jsonl and the checkpoints; `rollout_metrics(prompts,
    responses) -> dict`: task measures of each batch of rollouts (token ids of the prompts, decoded responses),
    logged with the update (e.g. exact match against gold answers: a measure the policy is not trained on)."""

    def __init__(self, args: PPOConfig, processing_class, model, reward_model, train_dataset, ref_model=None,
                 peft_config=None, run: runtime.Run | None = None, rollout_metrics=None):
        from accelerate import Accelerator

        self.args, self.tok, self.run, self.rollout_metrics = args, processing_class, run, rollout_metrics
        if processing_class.pad_token_id is None or processing_class.pad_token_id == processing_class.eos_token_id:
            raise UserError("the tokenizer's pad token must exist and differ from EOS",
                            fix="use hfrepro.rlhf.models.load_tokenizer, which picks one")
        self.prompts = [list(p) for p in (train_dataset["input_ids"] if hasattr(train_dataset, "column_names")
                                          else train_dataset)]
        if peft_config is not None:
            from peft import get_peft_model
            model = get_peft_model(model, peft_config)
        elif ref_model is None:
            raise UserError("full fine-tuning (no LoRA) needs a separate frozen ref_model")
        self.ref_model = ref_model
        self.reward_model = reward_model.eval().requires_grad_(False)
        rung = args.rung
        critic = critic_from(reward_model, args.value_trainable_layers) if rung.critic else None
        for m in (model, critic, ref_model, reward_model):
            if m is not None:
                _no_dropout(m)
        world = runtime.process_state().num_processes
        self.accelerator = Accelerator(gradient_accumulation_steps=self.micro_per_mini)
        self.local_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
        self.batch_size = self.local_batch * world
        self.num_updates = (args.max_steps if args.max_steps > 0  # --max_steps: updates, as the Trainer's steps
                            else math.ceil((args.total_episodes or len(self.prompts)) / self.batch_size))
        split = first_trained_block(model)  # frozen blocks below the adapter: run once per rollout
        if split and not check_split(model, split, head=backbone_of(model)[1].get_output_embeddings()):
            split = 0
        self.model = self._inner = PolicyAndCritic(model, critic, split)  # prepare() wraps it, never copies it
        # the reward model's lowest blocks are often the policy's own (both start from the SFT model): one pass
        # of them per rollout feeds the policy's, the reward model's and the critic's upper blocks
        below_critic = split if critic is None else min(split, critic.input_layer)
        self.shared = shared_lower_blocks(model, reward_model, below_critic)
        if self.shared:
            self._shared_views = (*decoder_views(model, self.shared, split)[:2], upper_view(reward_model, self.shared))
        self.optimizer, self.lr_scheduler = self._optimizer()
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        # after prepare: FSDP replaces every parameter by its shard (a DTensor), so a list taken before would
        # hold the unsharded originals, which are no longer trained
        self._policy_params = [p for p in self.policy.parameters() if p.requires_grad]
        self.accelerator.register_for_checkpointing(self.lr_scheduler)
        self.accelerator.register_save_state_pre_hook(_trainable_weights_only)
        device = self.accelerator.device
        self.reward_model.to(device)
        if ref_model is not None:
            ref_model.eval().requires_grad_(False).to(device)
        self.log_history: list[dict] = []
        self.done = 0
        self.timing = {"train_seconds": 0.0, "train_cpu_seconds": 0.0, "gen_seconds": 0.0, "gen_cpu_seconds": 0.0}

    @property
    def micro_per_mini(self) -> int:
        a = self.args
        return a.per_device_train_batch_size * a.gradient_accumulation_steps // (
            a.num_mini_batches if a.rung.clip else 1) // a.per_device_train_batch_size

    @property
    def policy(self):
        return self.unwrapped.policy

    def _optimizer(self):
        from transformers import Trainer
        from transformers.optimization import get_scheduler

        params = [p for p in self.model.parameters() if p.requires_grad]
        cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args)  # --optim, as the Trainer builds it
        optimizer = cls(params, weight_decay=self.args.weight_decay, **kwargs)
        sched = get_scheduler(self.args.lr_scheduler_type, optimizer,
                              num_warmup_steps=self.args.get_warmup_steps(self.num_updates),
                              num_training_steps=self.num_updates)
        return optimizer, sched

    # --- the loop -----------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint: str | None = None) -> dict:
        """Run the updates (those left after `resume_from_checkpoint`); returns the training metrics."""
        args = self.args
        if resume_from_checkpoint:
            self._load(resume_from_checkpoint)
        else:  # the sampling stream of each process (trl 1.12 seeded it so, after building the trainer)
            torch.manual_seed(args.seed + self.accelerator.process_index * 100003)
        if self.run is not None and self.accelerator.is_main_process:  # a killed run's, from the next update on
            _truncate_samples(self.run.path / "samples.jsonl", self.done)
        t0, c0 = time.perf_counter(), time.process_time()
        for update in range(self.done + 1, self.num_updates + 1):
            u0 = time.perf_counter()
            rollouts = self.rollout(self.prompt_batch(update - 1))
            adv, returns, stats = self.advantages(rollouts)
            stats.update(self.learn(rollouts, adv, returns))
            stats["lr"] = self.lr_scheduler.get_last_lr()[0]
            self.lr_scheduler.step()
            self.done = update
            self._log(update, rollouts, stats, time.perf_counter() - u0)
            if args.save_strategy != "no" and args.save_steps and update % int(args.save_steps) == 0 \
                    and update < self.num_updates:
                self.save_checkpoint(update)
        self.timing["train_seconds"] += time.perf_counter() - t0
        self.timing["train_cpu_seconds"] += time.process_time() - c0
        return self.metrics()

    def prompt_batch(self, index: int) -> list[list[int]]:
        """This process's prompts for batch `index`: a fresh seeded shuffle each pass over the prompts, cut into
        batches (the last incomplete one dropped), each answer sampled `num_generations` times. A pure function
        of (seed, index): a resumed run draws the same prompts as an uninterrupted one."""
        k, world = self.args.num_generations, self.accelerator.num_processes
        per_batch = self.batch_size // k
        per_pass = len(self.prompts) // per_batch
        if per_pass == 0:
            raise UserError(f"{len(self.prompts)} prompts are fewer than one batch of {per_batch}",
                            fix="use more prompts or a smaller batch")
        epoch, b = divmod(index, per_pass)
        order = torch.randperm(len(self.prompts), generator=torch.Generator().manual_seed(self.args.seed + epoch))
        ids = order[b * per_batch:(b + 1) * per_batch].tolist()
        local = per_batch // world
        ids = ids[self.accelerator.process_index * local:(self.accelerator.process_index + 1) * local]
        return [self.prompts[i] for i in ids for _ in range(k)]

    # --- 1. rollouts ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def rollout(self, prompts: list[list[int]]) -> Rollouts:
        """Sample a response to each prompt and measure it: log-probs (policy, reference), score, values."""
        args, tok, device = self.args, self.tok, self.accelerator.device
        queries, _ = left_pad(prompts, tok.pad_token_id, device)
        with self.full_parameters():  # FSDP: generation and the measuring passes run outside its forward
            g0, c0 = time.perf_counter(), time.process_time()
            responses, logprobs = generate_responses(self.policy, prompts, tok, args)
            gen, gen_cpu = time.perf_counter() - g0, time.process_time() - c0
            if args.stop_token == "eos":
                responses = L.truncate_after(responses, tok.eos_token_id, tok.pad_token_id)
            mask, last = L.response_mask(responses, tok.pad_token_id)
            ref, scores, hidden, policy_hidden = self.measure(queries, responses, last)
            values = None
            if hidden is not None:
                seq = torch.cat([queries, responses], 1)
                values = critic_values(self.model_critic, hidden, **_masks(seq, tok.pad_token_id),
                                       n_response=responses.shape[1])
        ended = (responses == tok.eos_token_id).any(1)
        if args.missing_eos_penalty:
            scores = scores - args.missing_eos_penalty * (~ended).float()
        value_mask = mask
        if args.reward_after_eos:  # trl 1.12: V is also learned on the state after EOS
            value_mask = torch.arange(mask.shape[1], device=device).unsqueeze(0) <= (last + 1).unsqueeze(1)
        if values is not None:
            values = values.masked_fill(~value_mask, 0.0)
        fill = lambda x: x.masked_fill(~mask, L.INVALID_LOGPROB)  # noqa: E731
        return Rollouts(queries, responses, fill(logprobs), fill(ref), scores, values, hidden, policy_hidden, mask,
                        value_mask, ended, gen, gen_cpu)

    def measure(self, queries: torch.Tensor, responses: torch.Tensor, last: torch.Tensor):
        """In chunks of `local_rollout_forward_batch_size`: log pi_ref of each response token, the reward model's
        score at the last token, and the frozen lower blocks' outputs the critic and the policy start from."""
        chunk, tok = self.args.local_rollout_forward_batch_size, self.tok
        layer = self.model_critic.input_layer if self.model_critic is not None else None
        out: dict[str, list] = {"ref": [], "scores": [], "hidden": [], "policy_hidden": []}
        for i in range(0, len(queries), chunk):
            q, r = queries[i:i + chunk], responses[i:i + chunk]
            seq = torch.cat([q, r], 1)
            ph, below = None, None
            if self.shared:  # blocks [0, shared) once, then the policy's up to its split and the reward model's
                lowest, middle, rm_upper = self._shared_views
                inputs = forward_inputs(seq, tok.pad_token_id)
                h = lowest(**inputs, use_cache=False).last_hidden_state
                ph = h if self.shared == self.split else middle(
                    inputs_embeds=h, attention_mask=inputs["attention_mask"], position_ids=inputs["position_ids"],
                    use_cache=False).last_hidden_state
                below = (self.shared, rm_upper, h)
            elif self.split:
                lower = self.unwrapped.views[0]
                ph = lower(**forward_inputs(seq, tok.pad_token_id), use_cache=False).last_hidden_state
            out["policy_hidden"].append(ph)
            out["ref"].append(self.reference_logprobs(q, r, ph))
            s, h = score_and_hidden(self.reward_model, seq, q.shape[1] + last[i:i + chunk], tok.pad_token_id, layer,
                                    below)
            out["scores"].append(s)
            out["hidden"].append(h)
        cat = lambda xs: torch.cat(xs) if xs and xs[0] is not None else None  # noqa: E731
        return cat(out["ref"]), cat(out["scores"]), cat(out["hidden"]), cat(out["policy_hidden"])

    @contextlib.contextmanager
    def full_parameters(self):
        """Under FSDP (FSDP2's `fully_shard`), every parameter whole on every process for the duration, as FSDP1's
        `summon_full_params`: generation and the rollout's measuring passes call the policy's parts directly, not
        the sharded module's forward, so its hooks would not gather them (and gathering each block at each
        sampled token would be slow). Elsewhere a no-op. Every process must enter it (it communicates)."""
        from torch.distributed.fsdp import FSDPModule

        shards = [m for m in self.model.modules() if isinstance(m, FSDPModule)]  # the root first
        if not shards:
            yield
            return
        self.model.set_reshard_after_forward(False)  # keep them whole through the forwards inside
        for m in shards:
            m.unshard()
        try:
            yield
        finally:
            for m in shards:
                m.reshard()
            self.model.set_reshard_after_forward(bool(self.accelerator.state.fsdp_plugin.reshard_after_forward))

    @property
    def unwrapped(self) -> PolicyAndCritic:
        """The module under accelerate's wrapper (kept: `unwrap_model` walks every module, ~10 ms a call)."""
        return self._inner

    @property
    def split(self) -> int:
        return self.unwrapped.split

    @property
    def model_critic(self):
        return self.unwrapped.critic

    def reference_logprobs(self, queries: torch.Tensor, responses: torch.Tensor, policy_hidden=None) -> torch.Tensor:
        """log pi_ref(y_t | s_t): the policy with its adapter switched off (from the cached lower blocks when
        the adapter sits above them), or the separate `ref_model`."""
        ids = torch.cat([queries, responses], 1)
        inputs = forward_inputs(ids, self.tok.pad_token_id)
        n = responses.shape[1]
        if self.ref_model is not None:
            logits = self.ref_model(**inputs, logits_to_keep=n + 1, use_cache=False).logits[:, :-1]
        else:
            with self.policy.disable_adapter():
                logits = self.unwrapped.policy_logits(n, policy_hidden, **inputs)
        return L.selective_log_softmax(logits.float() / self.args.temperature, responses)

    # --- 2.-3. rewards and advantages ---------------------------------------------------------------------------

    def advantages(self, ro: Rollouts) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Per-token rewards (KL penalty + score), then A_t and the critic's targets by the algorithm's rung."""
        args, rung = self.args, self.args.rung
        kl = L.kl_per_token(ro.logprobs, ro.ref_logprobs, args.kl_estimator)
        last = ro.mask.sum(1) - 1
        end = torch.where(last + 1 < ro.mask.shape[1], last + 1, last) if args.reward_after_eos else last
        rewards = L.token_rewards(kl, ro.scores, end, args.kl_coef)
        if args.whiten_rewards:
            rewards = L.masked_whiten(rewards, ro.value_mask, shift_mean=False).masked_fill(~ro.value_mask, 0.0)
        rewards = rewards.masked_fill(~ro.value_mask, 0.0)
        if rung.critic:
            values = ro.values
        elif rung.baseline:  # b: the mean return of the other answers to the same prompt, on every token
            total = rewards.sum(1)
            values = L.leave_one_out_baseline(total, args.num_generations).unsqueeze(1) * ro.mask
        else:
            values = torch.zeros_like(rewards)
        lam = args.lam if rung.lam is None else rung.lam
        adv, returns = L.gae(rewards, values, args.gamma, lam)
        if rung.whiten:
            adv = L.masked_whiten(adv, ro.mask)
        adv = adv.masked_fill(~ro.mask, 0.0)
        stats = {"kl": kl.masked_fill(~ro.mask, 0).sum(1), "non_score_reward": (-args.kl_coef * kl * ro.mask).sum(1)}
        return adv, returns, stats

    # --- 4. learning -------------------------------------------------------------------------------------------

    def learn(self, ro: Rollouts, adv: torch.Tensor, returns: torch.Tensor) -> dict:
        """PPO: epochs x minibatches x micro-batches; the other rungs: one step over all micro-batches."""
        import numpy as np

        args, rung = self.args, self.args.rung
        epochs, n_mini = (args.num_ppo_epochs, args.num_mini_batches) if rung.clip else (1, 1)
        mini = self.local_batch // n_mini
        micro = args.per_device_train_batch_size
        rec: dict[str, list[float]] = {}
        grads: list[torch.Tensor] = []
        self.model.train()
        for epoch in range(epochs):
            order = np.random.permutation(self.local_batch)  # trl 1.12's shuffle (numpy's stream)
            for m in range(0, self.local_batch, mini):
                for u in range(m, m + mini, micro):
                    idx = torch.as_tensor(order[u:u + micro], device=ro.queries.device)
                    with self.accelerator.accumulate(self.model):
                        before = self._policy_grad() if epoch == 0 and self._measure_grads else None
                        stats = self.micro_step(ro, adv, returns, idx)
                        if before is not None:
                            grads.append((self._policy_grad() - before) * self.micro_per_mini)
                        if self.accelerator.sync_gradients and args.max_grad_norm:
                            self.accelerator.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
                        self.optimizer.step()
                        self.optimizer.zero_grad()
                    for k, v in stats.items():
                        rec.setdefault(k, []).append(float(v))
        out = {k: sum(v) / len(v) for k, v in rec.items()}
        out.update(gradient_variance(grads))
        return out

    @property
    def _measure_grads(self) -> bool:
        return self.accelerator.num_processes == 1

    def _policy_grad(self) -> torch.Tensor:
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().flatten().float()
                          for p in self._policy_params])

    def micro_step(self, ro: Rollouts, adv: torch.Tensor, returns: torch.Tensor, idx: torch.Tensor) -> dict:
        """Forward the policy (and critic) on some rollouts again, compute the losses, backward."""
        args = self.args
        seq = torch.cat([ro.queries[idx], ro.responses[idx]], 1)
        n = ro.responses.shape[1]
        hidden = ro.hidden[idx] if ro.hidden is not None else None
        policy_hidden = ro.policy_hidden[idx] if ro.policy_hidden is not None else None
        logits, vpred = self.model(**forward_inputs(seq, self.tok.pad_token_id), n_response=n, hidden=hidden,
                                   policy_hidden=policy_hidden)
        logits = logits.float() / args.temperature
        new_lp = L.selective_log_softmax(logits, ro.responses[idx]).masked_fill(~ro.mask[idx], L.INVALID_LOGPROB)
        clip = args.cliprange if args.rung.clip else None
        pg_loss, st = L.policy_loss(new_lp, ro.logprobs[idx], adv[idx], ro.mask[idx], clip)
        loss, stats = pg_loss, {"policy_loss": pg_loss.detach(), **st}
        if vpred is not None:
            vmask = ro.value_mask[idx]
            vpred = vpred.masked_fill(~vmask, 0.0)
            vclip = args.cliprange_value if args.rung.clip else None
            vf_loss, vclipfrac = L.value_loss(vpred, ro.values[idx], returns[idx], vmask, vclip)
            loss = loss + args.vf_coef * vf_loss
            stats.update(value_loss=vf_loss.detach(), value_clipfrac=vclipfrac)
        self.accelerator.backward(loss)
        with torch.no_grad():
            stats["token_entropy"] = L.masked_mean(L.entropy_from_logits(logits), ro.mask[idx])
        return stats

    # --- logs, checkpoints, the result --------------------------------------------------------------------------

    def _log(self, update: int, ro: Rollouts, stats: dict, seconds: float) -> None:
        acc = self.accelerator
        kl, nsr = stats.pop("kl"), stats.pop("non_score_reward")
        every = acc.gather_for_metrics
        scores, kls = every(ro.scores), every(kl)
        entropy = every((-ro.logprobs * ro.mask).sum(1))
        row = {"step": update, "episode": update * self.batch_size,
               "reward": scores.mean().item(), "reward_std": scores.std().item() if len(scores) > 1 else 0.0,
               "kl": kls.mean().item(), "kl_se": (kls.std() / math.sqrt(len(kls))).item() if len(kls) > 1 else None,
               "kl_max_response": kls.max().item(), "rlhf_reward": (scores + every(nsr)).mean().item(),
               "entropy": entropy.mean().item(), "no_eos_rate": 1.0 - every(ro.ended.float()).mean().item(),
               "response_tokens": every(ro.mask.sum(1).float()).mean().item(),
               "gen_seconds": round(ro.gen_seconds, 3), "update_seconds": round(seconds, 3)}
        row.update({k: (v if isinstance(v, (int, float)) or v is None else float(v)) for k, v in stats.items()})
        if self.rollout_metrics is not None:
            prompts = [[t for t in q.tolist() if t != self.tok.pad_token_id] for q in ro.queries]
            texts = self.tok.batch_decode([r[m].tolist() for r, m in zip(ro.responses, ro.mask)],
                                          skip_special_tokens=True)
            task = self.rollout_metrics(prompts, texts)
            row.update({k: every(torch.tensor(float(v), device=acc.device)).mean().item() for k, v in task.items()})
        self.timing["gen_seconds"] += ro.gen_seconds
        self.timing["gen_cpu_seconds"] += ro.gen_cpu_seconds
        for key in ("reward", "policy_loss"):
            runtime.check_finite(row[key], update, str(self.run.path if self.run else self.args.output_dir))
        self.log_history.append(row)
        if self.run is not None and acc.is_main_process:
            self.run.log(row)
            if self.args.samples_per_step:
                self._write_samples(update, ro)

    def _write_samples(self, update: int, ro: Rollouts) -> None:
        n = min(self.args.samples_per_step, len(ro.responses))
        with open(self.run.path / "samples.jsonl", "a", encoding="utf-8") as f:
            for i in range(n):
                prompt = [t for t in ro.queries[i].tolist() if t != self.tok.pad_token_id]
                resp = ro.responses[i][ro.mask[i]].tolist()
                f.write(json.dumps({"step": update, "prompt": _question(self.tok, prompt),
                                    "response": self.tok.decode(resp, skip_special_tokens=True),
                                    "ended": bool(ro.ended[i]), "reward": round(float(ro.scores[i]), 4)},
                                   ensure_ascii=False) + "\n")

    def save_checkpoint(self, update: int) -> Path:
        """checkpoint-<update>/: accelerate's state (trainable weights, optimizer, scheduler, every RNG) +
        trainer_state.json (what `runtime.last_checkpoint` looks for, written last). The newest
        `save_total_limit` are kept."""
        folder = Path(self.run.path if self.run else self.args.output_dir) / f"checkpoint-{update}"
        self.accelerator.save_state(str(folder))
        if self.accelerator.is_main_process:
            atomic_write_json(folder / "trainer_state.json", {"global_step": update,
                                                              "episode": update * self.batch_size})
            keep = self.args.save_total_limit or 2
            for old in runtime.checkpoints(folder.parent)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return folder

    def _load(self, checkpoint: str | Path) -> None:
        self.accelerator.load_state(str(checkpoint), strict=False)
        self.done = self._resumed_from = int(read_json(Path(checkpoint) / "trainer_state.json")["global_step"])
        if self.done >= self.num_updates:
            raise UserError(f"checkpoint {checkpoint} is already at the last update ({self.done})",
                            fix="the run finished but did not save its model: pass --overwrite to redo it")
        if self.run is not None and self.accelerator.is_main_process:
            print(f"[{self.args.algo}] resuming from {checkpoint}: {self.done} of {self.num_updates} updates done",
                  flush=True)

    def metrics(self) -> dict:
        from hfrepro.lora import count_parameters

        t = self.timing
        trainable, total = count_parameters(self.policy)
        return {"algo": self.args.algo, "updates": self.num_updates, "resumed_from": self.resumed_from,
                "updates_this_session": self.num_updates - self.resumed_from,
                "train_seconds": round(t["train_seconds"], 2), "train_cpu_seconds": round(t["train_cpu_seconds"], 2),
                "generate_seconds": round(t["gen_seconds"], 2),
                "generate_share": round(t["gen_seconds"] / t["train_seconds"], 4) if t["train_seconds"] else None,
                "generate_cpu_share": (round(t["gen_cpu_seconds"] / t["train_cpu_seconds"], 4)
                                       if t["train_cpu_seconds"] else None),
                "seconds_per_update": round(t["train_seconds"] / max(1, self.num_updates - self.resumed_from), 3),
                "world_size": self.accelerator.num_processes, "policy_trainable_params": trainable,
                "policy_params": total, "frozen_blocks": self.split, "blocks_shared_with_reward_model": self.shared}

    @property
    def resumed_from(self) -> int:
        return getattr(self, "_resumed_from", 0)

    def save_model(self, folder: str | Path) -> Path:
        """The policy with its adapter merged, as a complete model folder (main process writes)."""
        self.accelerator.wait_for_everyone()
        policy = self._whole_policy() if self.is_fsdp else (
            copy.deepcopy(self.policy) if self.accelerator.is_main_process else None)
        out = save_policy(policy, self.tok, folder, self.accelerator.is_main_process)
        self.accelerator.wait_for_everyone()
        return out

    @property
    def is_fsdp(self) -> bool:
        return self.accelerator.distributed_type == "FSDP"  # accelerate's DistributedType is a str enum

    def _whole_policy(self):
        """FSDP: the policy gathered from every process's shards into a fresh unsharded copy on the main process
        (None elsewhere); the sharded one cannot be deep-copied nor merged locally. Every process must call it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(self.policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.accelerator.is_main_process:
            return None
        peft = getattr(self.policy, "peft_config", None)
        base = self.policy.get_base_model() if peft else self.policy
        whole = type(base)(base.config)
        if peft:
            from peft import get_peft_model
            whole = get_peft_model(whole, peft[self.policy.active_adapter])
        whole.load_state_dict(state)
        return whole


# --- helpers --------------------------------------------------------------------------------------------------


def generate_responses(policy, prompts: list[list[int]], tok, args: PPOConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """`num_generations` answers to each prompt (rows: prompt after prompt, its answers side by side), sampled
    with the KV cache, each prompt run once (hfrepro/rlhf/sampling.py); and the log-probability of each sampled
    token at `temperature`, from the logits that chose it."""
    k = args.num_generations
    unique = prompts[::k]
    if [p for p in unique for _ in range(k)] != prompts:
        raise ValueError("rollout prompts must come in groups of num_generations equal prompts")
    eos = tok.eos_token_id if args.stop_token == "eos" else None
    return sample(policy, unique, k, args.response_length, args.temperature, eos, tok.pad_token_id)


def _masks(seq: torch.Tensor, pad_token_id: int) -> dict:
    f = forward_inputs(seq, pad_token_id)
    return {"attention_mask": f["attention_mask"], "position_ids": f["position_ids"]}


def score_and_hidden(reward_model, seq: torch.Tensor, end: torch.Tensor, pad_token_id: int, layer: int | None,
                     below=None):
    """The reward model's score of each sequence, read at position `end` (the response's last token), and (for
    the critic) the hidden states entering block `layer`: one forward pass serves both. `below` = (k, view,
    hidden): the hidden states entering block k were computed already (blocks shared with the policy), `view`
    (blocks.upper_view) runs the rest."""
    backbone, start = getattr(reward_model, reward_model.base_model_prefix), 0
    inputs = forward_inputs(seq, pad_token_id)
    if below is not None:
        start, backbone, hidden = below
        inputs = {"inputs_embeds": hidden, "attention_mask": inputs["attention_mask"],
                  "position_ids": inputs["position_ids"]}
    deeper = layer is not None and (below is None or layer > start)  # else: the states entering block k, given
    out = backbone(**inputs, output_hidden_states=deeper, use_cache=False)
    h = out.last_hidden_state[torch.arange(len(seq), device=seq.device), end]
    scores = reward_model.score(h).squeeze(-1).float()
    if layer is None:
        return scores, None
    return scores, (out.hidden_states[layer - start] if deeper else below[2])


def gradient_variance(grads: list[torch.Tensor]) -> dict:
    """The variance of the policy-gradient estimate: micro-batch gradients g_1..g_J of one batch (each an
    estimate of the same gradient from `per_device_train_batch_size` responses); grad_var = sum over
    parameters of their sample variance, grad_mean_sq = |mean g|^2, grad_noise_ratio = grad_var / |mean g|^2."""
    if len(grads) < 2:
        return {}
    g = torch.stack(grads)
    mean = g.mean(0)
    var = ((g - mean) ** 2).sum(1).sum() / (len(grads) - 1)
    sq = (mean ** 2).sum()
    return {"grad_var": var.item(), "grad_mean_sq": sq.item(),
            "grad_noise_ratio": (var / sq).item() if sq > 0 else None, "grad_samples": len(grads)}


def _no_dropout(model) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def _trainable_weights_only(models, weights, output_dir) -> None:
    """accelerate's save_state hook: keep only the trained tensors of each model (LoRA, critic), not the frozen
    base weights (the run folder's model is saved separately); `load_state(..., strict=False)` reads them back.
    Under FSDP `weights` is empty: accelerate has already written the (whole) sharded model itself."""
    for i, model in enumerate(models[:len(weights)]):
        trained = {n for n, p in model.named_parameters() if p.requires_grad}
        weights[i] = {k: v for k, v in weights[i].items() if k in trained}


def _truncate_samples(path: Path, step: int) -> None:
    """Drop the samples written after update `step` (the checkpoint resumed from; 0 when a run killed before its
    first checkpoint starts again): the run draws them again."""
    if path.is_file():
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows
                                        if r.get("step", 0) <= step))


def _question(tok, prompt_ids: list[int]) -> str:
    text = tok.decode(prompt_ids, skip_special_tokens=False)
    if "<|im_start|>user\n" in text:  # the user turn of a chat-formatted prompt, else the whole prompt
        text = text.split("<|im_start|>user\n")[-1].split("<|im_end|>")[0]
    return text.strip()
