"""The InstructGPT pipeline in one run: SFT -> reward model -> RL (PPO, or RLOO / GRPO / DPO), then a held-out
evaluation and one comparison table.

    runs/rlhf/
        config.yaml, metrics.json        the whole run's arguments and summary
        sft/      model/ (merged LoRA)   the SFT policy = the RL reference; eval.json (its held-out numbers)
        reward/   model/                 the reward model; metrics.json has held-out pairwise accuracy
        ppo/      model/, log.jsonl, samples.jsonl, eval.json, eval_samples.jsonl
        rloo/ grpo/ dpo/                 the same, for each algorithm run
        comparison.md / .json            one row per algorithm: reward gain, KL, exact match, time
        curves.png                       reward and KL per RL step

Every stage folder records the arguments it depends on; a stage whose model exists with the same arguments
is skipped, an interrupted one resumes from its last checkpoint, so re-running the same command continues and
`--algo rloo` after `--algo ppo` reuses the SFT policy and the reward model.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from hfrepro.errors import UserError
from hfrepro.rlhf.online import ALGOS


@dataclass
class RLHFArguments:
    output_dir: str = field(default="runs/rlhf", metadata={"help": "run folder (one sub-folder per stage)"})
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "base chat model: embedded name, folder or Hub id"})
    dataset: str = field(default="questions-words", metadata={
        "help": "questions-words (the embedded one-word-answer task) or a TRL preference file (.jsonl) with "
                "prompt/chosen/rejected (+ optional answer column for exact match)"})
    algo: str = field(default="ppo", metadata={"help": "ppo | rloo | grpo | dpo | all, or a comma list"})
    seed: int = field(default=0)
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: cores / processes)"})
    overwrite: bool = field(default=False, metadata={"help": "redo stages whose folder holds a different config"})
    pairs_per_prompt: int = field(default=2, metadata={"help": "rejected answers per prompt (embedded task)"})
    eval_prompts: int = field(default=64, metadata={"help": "held-out prompts evaluated (0: all of the test split)"})
    eval_samples: int = field(default=4, metadata={"help": "sampled answers per held-out prompt (reward, KL)"})
    # --- SFT
    sft_examples: int = field(default=128, metadata={"help": "demonstrations (prompt -> chosen answer)"})
    sft_steps: int = field(default=16)
    sft_batch_size: int = field(default=8)
    sft_learning_rate: float = field(default=1e-3)
    lora_r: int = field(default=16, metadata={"help": "LoRA rank for SFT and RL policies (0: full fine-tuning)"})
    lora_alpha: int = field(default=32)
    # --- reward model
    rm_init: str = field(default="sft", metadata={"help": "sft (InstructGPT: RM initialised from the SFT model) | base"})
    rm_pairs: int = field(default=256, metadata={"help": "training pairs (0: all)"})
    rm_epochs: float = field(default=1.0)
    rm_batch_size: int = field(default=8)
    rm_learning_rate: float = field(default=2e-4)
    rm_layers: int = field(default=16, metadata={"help": "transformer blocks kept in the reward/value model (0: all)"})
    rm_trainable_layers: int = field(default=4, metadata={"help": "top blocks trained (0: all)"})
    # --- RL, shared by PPO / RLOO / GRPO (and steps, batch, lr by DPO)
    rl_steps: int = field(default=24, metadata={"help": "policy updates"})
    rl_batch_size: int = field(default=16, metadata={"help": "sampled responses per update and process"})
    rl_learning_rate: float = field(default=3e-4)
    rl_lora_layers: int = field(default=0, metadata={
        "help": "RL policies: LoRA in the top N blocks only (0: all); backpropagation stops below them"})
    kl_coef: float = field(default=0.05, metadata={"help": "KL penalty (PPO kl_coef, RLOO/GRPO beta)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature in RL and evaluation"})
    max_new_tokens: int = field(default=8, metadata={"help": "response length limit"})
    missing_eos_penalty: float = field(default=1.0, metadata={"help": "subtracted from the reward of an unfinished response"})
    ppo_epochs: int = field(default=2, metadata={"help": "PPO epochs per batch of rollouts"})
    ppo_mini_batches: int = field(default=2, metadata={
        "help": "minibatches per batch: updates after the first are off-policy, so the clipped ratio matters"})
    value_trainable_layers: int = field(default=4, metadata={"help": "top blocks of the value model trained (0: all)"})
    num_generations: int = field(default=2, metadata={"help": "samples per prompt for RLOO / GRPO"})
    dpo_beta: float = field(default=0.1)
    save_steps: int = field(default=8, metadata={"help": "checkpoint every N updates (0: only at the end)"})
    samples_per_step: int = field(default=4, metadata={"help": "PPO rollouts written to samples.jsonl each step"})
    kl_bound: float = field(default=2.0, metadata={"help": "KL (nats per response) under which 'bounded' holds"})

    def algos(self) -> list[str]:
        names = list(ALGOS) if self.algo == "all" else [a.strip() for a in self.algo.split(",") if a.strip()]
        bad = [a for a in names if a not in ALGOS]
        if bad or not names:
            raise UserError(f"unknown --algo {self.algo!r}", fix=f"use one of {', '.join(ALGOS)}, all, or a comma list")
        return names


SFT_KEYS = ("model", "dataset", "seed", "pairs_per_prompt", "sft_examples", "sft_steps", "sft_batch_size",
            "sft_learning_rate", "lora_r", "lora_alpha")
RM_KEYS = SFT_KEYS + ("rm_init", "rm_pairs", "rm_epochs", "rm_batch_size", "rm_learning_rate", "rm_layers",
                      "rm_trainable_layers")
RL_KEYS = RM_KEYS + ("rl_steps", "rl_batch_size", "rl_learning_rate", "rl_lora_layers", "kl_coef", "temperature", "max_new_tokens",
                     "missing_eos_penalty")
ALGO_KEYS = {"ppo": ("ppo_epochs", "ppo_mini_batches", "value_trainable_layers"), "rloo": ("num_generations",),
             "grpo": ("num_generations",), "dpo": ("dpo_beta",)}
EVAL_KEYS = ("eval_prompts", "eval_samples")


def _subset(args, keys) -> dict:
    d = asdict(args)
    return {k: d[k] for k in keys}


# --- stage bookkeeping that is safe under several processes ----------------------------------------------

def _begin(run, cfg: dict, overwrite: bool, state) -> bool:
    """Check (every rank) then record (main) the stage config. Returns True when the stage is already done."""
    from hfrepro.training import _strip
    old = run.saved_config()
    if old is not None and _strip(old) != _strip(cfg) and not overwrite:
        diff = sorted(k for k in set(old) | set(cfg) if old.get(k) != cfg.get(k))
        raise UserError(f"{run.path} holds a stage run with a different config (differs in: {', '.join(diff[:8])})",
                        where=str(run.config_path),
                        fix="choose another --output_dir, or pass --overwrite to redo the stages that changed")
    done = old is not None and _strip(old) == _strip(cfg) and (run.model_dir / "config.json").is_file() \
        and run.metrics().get("done") is True
    state.wait_for_everyone()
    if state.is_main_process and not done:
        if old is not None and _strip(old) != _strip(cfg):
            (run.path / "samples.jsonl").unlink(missing_ok=True)
        for name in ("eval.json", "eval_samples.jsonl"):  # stale once the stage trains again
            (run.path / name).unlink(missing_ok=True)
        run.start(cfg, overwrite=overwrite)
    state.wait_for_everyone()
    return done


def _finish(run, metrics: dict, state, card: dict) -> dict:
    from hfrepro.cards import write_model_card
    if state.is_main_process:
        metrics = run.write_metrics({**metrics, "done": True})
        write_model_card(run.model_dir, metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))
                                                 and not isinstance(v, bool)}, config=run.saved_config(), **card)
    state.wait_for_everyone()
    return metrics


# --- the pipeline ----------------------------------------------------------------------------------------

def run_pipeline(args: RLHFArguments, progress=print) -> dict:
    from hfrepro.rlhf.models import runtime_state

    from hfrepro.config import resolved
    from hfrepro.fsutil import atomic_write_text
    from hfrepro.rlhf import prefs
    from hfrepro.rlhf.models import load_tokenizer
    from hfrepro.training import RunDir, setup_runtime

    clock = _Clock()
    algos = args.algos()
    setup_runtime(seed=args.seed, threads=args.threads or None)
    state = runtime_state()
    out = Path(args.output_dir)
    if state.is_main_process:
        import yaml
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(resolved(args), sort_keys=True))
    tok = load_tokenizer(args.model)
    data = prefs.load_preferences(args.dataset, seed=args.seed, pairs_per_prompt=args.pairs_per_prompt)
    train_pairs = data["train"]
    train_prompts = prefs.unique_prompts(train_pairs)
    test_split = data["test"] if "test" in data else data["validation"]
    eval_rows = prefs.unique_prompts(test_split)
    if args.eval_prompts:
        eval_rows = eval_rows[:args.eval_prompts]
    base_path = _model_path(args.model)
    summary: dict = {"world_size": state.num_processes}
    t_all = time.perf_counter()
    clock.lap("setup")

    # 1. SFT (train_sft records its config, skips a finished run and resumes an interrupted one)
    sft = RunDir(out / "sft")
    from hfrepro.rlhf.sft import run_sft
    progress(f"[rlhf] sft: {args.sft_steps} steps x {args.sft_batch_size} from "
             f"{min(args.sft_examples, len(train_prompts))} demonstrations (skipped if done with this config)")
    summary.update(run_sft(run_dir=sft.path, tok=tok, model_name=base_path, rows=train_prompts[:args.sft_examples],
                           config=_subset(args, SFT_KEYS), max_steps=args.sft_steps, batch_size=args.sft_batch_size,
                           learning_rate=args.sft_learning_rate, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                           seed=args.seed, overwrite=args.overwrite, save_steps=args.save_steps))
    state.wait_for_everyone()
    clock.lap("sft")

    # 2. reward model
    rm = RunDir(out / "reward")
    if _begin(rm, _subset(args, RM_KEYS), args.overwrite, state):
        progress(f"[rlhf] reward: done earlier, reusing {rm.model_dir}")
    else:
        from trl import RewardConfig

        from hfrepro.rlhf.reward import train_reward
        from hfrepro.training import make_training_args
        pairs = train_pairs.shuffle(seed=args.seed)
        if args.rm_pairs:
            pairs = pairs.select(range(min(args.rm_pairs, len(pairs))))
        progress(f"[rlhf] reward: {len(pairs)} pairs, {args.rm_epochs:g} epoch(s), "
                 f"{args.rm_layers or 'all'} blocks ({args.rm_trainable_layers or 'all'} trained)")
        cfg = make_training_args(cls=RewardConfig, output_dir=str(rm.checkpoints), per_device_train_batch_size=args.rm_batch_size,
                                 num_train_epochs=args.rm_epochs, learning_rate=args.rm_learning_rate, logging_steps=1,
                                 seed=args.seed, save_strategy="steps" if args.save_steps else "no",
                                 save_steps=max(1, args.save_steps), disable_tqdm=True, lr_scheduler_type="linear",
                                 max_length=256)
        init = str(sft.model_dir) if args.rm_init == "sft" else base_path
        m = train_reward(run=rm, tok=tok, model_name=init, train_ds=pairs,
                         eval_ds=None, test_ds=test_split, config=cfg, layers=args.rm_layers,
                         trainable_layers=args.rm_trainable_layers)
        _finish(rm, m, state, dict(title="Reward model (hfrepro RLHF stage)", base_model=_card_base(args.model),
                                   pipeline_tag="text-classification", tags=["reward-model", "trl"],
                                   description="Bradley-Terry reward model trained with TRL's RewardTrainer on "
                                               "preference pairs; the score is read at the EOS token."))
    summary.update({k: v for k, v in rm.metrics().items() if k.startswith("rm_")})
    clock.lap("reward")

    # 3. held-out evaluation of the SFT policy (the baseline every algorithm is compared with)
    sft_eval = _evaluate(sft, None, tok, eval_rows, rm, args, state, progress, baseline=None)
    clock.lap("eval_sft")

    # 4. RL
    for algo in algos:
        run = RunDir(out / algo)
        cfg = {**_subset(args, RL_KEYS + ALGO_KEYS[algo]), "algo": algo}
        if _begin(run, cfg, args.overwrite, state):
            progress(f"[rlhf] {algo}: done earlier, reusing {run.model_dir}")
        else:
            progress(f"[rlhf] {algo}: {args.rl_steps} updates x {args.rl_batch_size} responses per process")
            m = _train_rl(algo, run, tok, sft, rm, train_prompts, train_pairs, args)
            m["train_cpu_seconds_main_process"] = round(clock.cpu_since(), 1)
            _finish(run, m, state, dict(title=f"{algo.upper()} policy (hfrepro RLHF stage)",
                                        base_model=_card_base(args.model), pipeline_tag="text-generation",
                                        tags=[algo, "rlhf", "trl"],
                                        description=f"The SFT policy trained with {algo.upper()} "
                                                    + ("on the preference pairs (offline)." if algo == "dpo" else
                                                       "against the reward model, with a KL penalty to the SFT policy.")))
        clock.lap(algo)
        _evaluate(run, sft, tok, eval_rows, rm, args, state, progress, baseline=sft_eval)
        clock.lap(f"eval_{algo}")

    if state.is_main_process:
        summary.update(write_comparison(out, args))
        summary["total_seconds_this_invocation"] = round(time.perf_counter() - t_all, 1)
        summary["seconds_this_invocation"] = clock.wall
        summary["cpu_seconds_this_invocation"] = clock.cpu  # this process; 0-ish for a stage that was reused
        RunDir(out).write_metrics(summary)
    state.wait_for_everyone()
    return summary


class _Clock:
    """Wall and CPU seconds (this process) per pipeline step: the CPU time is the steadier number on a
    machine shared with other work."""

    def __init__(self):
        self.wall, self.cpu = {}, {}
        self._w, self._c = time.perf_counter(), time.process_time()

    def cpu_since(self) -> float:
        return time.process_time() - self._c

    def lap(self, name: str) -> None:
        w, c = time.perf_counter(), time.process_time()
        self.wall[name], self.cpu[name] = round(w - self._w, 1), round(c - self._c, 1)
        self._w, self._c = w, c


def _train_rl(algo, run, tok, sft, rm, train_prompts, train_pairs, args) -> dict:
    if algo == "ppo":
        from trl.experimental.ppo import PPOConfig

        from hfrepro.rlhf.ppo import train_ppo
        from hfrepro.training import make_training_args
        from hfrepro.rlhf.models import runtime_state
        n_proc = runtime_state().num_processes
        cfg = make_training_args(
            cls=PPOConfig, output_dir=str(run.checkpoints), per_device_train_batch_size=args.rl_batch_size,
            gradient_accumulation_steps=1, num_mini_batches=args.ppo_mini_batches, num_ppo_epochs=args.ppo_epochs,
            total_episodes=args.rl_steps * args.rl_batch_size * n_proc, learning_rate=args.rl_learning_rate,
            kl_coef=args.kl_coef, temperature=args.temperature, response_length=args.max_new_tokens,
            stop_token="eos", missing_eos_penalty=args.missing_eos_penalty, local_rollout_forward_batch_size=args.rl_batch_size,
            num_sample_generations=0, logging_steps=1, save_steps=args.save_steps, seed=args.seed, disable_tqdm=True,
            per_device_eval_batch_size=min(8, args.rl_batch_size), lr_scheduler_type="linear")
        return train_ppo(run=run, tok=tok, policy_path=str(sft.model_dir), reward_path=str(rm.model_dir),
                         train_rows=train_prompts, config=cfg, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                         lora_layers=args.rl_lora_layers,
                         value_trainable_layers=args.value_trainable_layers, samples_per_step=args.samples_per_step)
    from hfrepro.rlhf.online import train_online
    return train_online(algo, run=run, tok=tok, policy_path=str(sft.model_dir), reward_path=str(rm.model_dir),
                        train_rows=train_prompts, pair_rows=train_pairs, steps=args.rl_steps,
                        batch_size=args.rl_batch_size, learning_rate=args.rl_learning_rate, kl_coef=args.kl_coef,
                        temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                        missing_eos_penalty=args.missing_eos_penalty, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                        lora_layers=args.rl_lora_layers,
                        seed=args.seed, num_generations=args.num_generations, dpo_beta=args.dpo_beta,
                        save_steps=args.save_steps)


def _evaluate(run, reference_run, tok, rows, rm_run, args, state, progress, baseline) -> list[dict] | None:
    return evaluate_folder(run.path, str(run.model_dir),
                           str(reference_run.model_dir) if reference_run is not None else None,
                           str(rm_run.model_dir), tok, rows, temperature=args.temperature,
                           max_new_tokens=args.max_new_tokens, missing_eos_penalty=args.missing_eos_penalty,
                           seed=args.seed, baseline=baseline, state=state, progress=progress, samples=args.eval_samples)


def evaluate_folder(folder: Path, model_path: str, reference_path: str | None, rm_path: str, tok, rows, *,
                    temperature: float, max_new_tokens: int, missing_eos_penalty: float, seed: int, baseline,
                    state, progress=print, samples: int = 1) -> list[dict] | None:
    """Evaluate `model_path` on held-out rows (main process); cached in folder/eval.json + eval_samples.jsonl.
    Returns the per-prompt records (main process) or None."""
    import json

    from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json
    from hfrepro.rlhf.evaluate import evaluate_policy
    from hfrepro.rlhf.models import load_frozen

    folder = Path(folder)
    f, fs = folder / "eval.json", folder / "eval_samples.jsonl"
    key = {"eval_prompts": len(rows), "samples": samples, "temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed,
           "missing_eos_penalty": missing_eos_penalty, "reference": reference_path, "reward_model": rm_path,
           "model_mtime": _mtime(model_path), "rm_mtime": _mtime(rm_path)}
    recs = None
    if state.is_main_process:
        if f.is_file() and fs.is_file() and read_json(f).get("key") == key:
            recs = [json.loads(line) for line in fs.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            t0 = time.perf_counter()
            progress(f"[rlhf] evaluating {folder.name} on {len(rows)} held-out prompts")
            policy = load_frozen(model_path, tok)
            ref = load_frozen(reference_path, tok) if reference_path is not None else None
            rmodel = load_frozen(rm_path, tok, kind="scorer")
            m, recs = evaluate_policy(policy, tok, rows, reference=ref, rm=rmodel, max_new_tokens=max_new_tokens,
                                      temperature=temperature, missing_eos_penalty=missing_eos_penalty,
                                      seed=seed, baseline=baseline, samples=samples)
            m["eval_seconds"] = round(time.perf_counter() - t0, 2)
            atomic_write_text(fs, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
            atomic_write_json(f, {"key": key, **m})
            del policy, ref, rmodel
    state.wait_for_everyone()
    return recs


def _mtime(folder: str) -> float | None:
    f = Path(folder) / "model.safetensors"
    return f.stat().st_mtime if f.is_file() else None


# --- comparison and curves -------------------------------------------------------------------------------

def write_comparison(out: Path, args) -> dict:
    """comparison.md/.json over every algorithm folder finished in this run folder; curves.png."""
    from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json
    from hfrepro.report import md_table

    base = read_json(out / "sft" / "eval.json") if (out / "sft" / "eval.json").is_file() else {}
    rows = [_row("sft (reference)", base, {}, base)]
    for algo in ALGOS:
        f = out / algo / "eval.json"
        if f.is_file():
            rows.append(_row(algo, read_json(f), read_json(out / algo / "metrics.json"), base))
    atomic_write_json(out / "comparison.json", rows)
    table = md_table(rows)
    atomic_write_text(out / "comparison.md", table)
    plot = plot_curves(out)
    return {"comparison": rows, "curves_png": str(plot) if plot else None}


def _row(name, ev: dict, m: dict, base: dict) -> dict:
    em, em0 = ev.get("exact_match"), base.get("exact_match")
    return {
        "policy": name,
        "reward (held-out)": ev.get("reward"),
        "reward gain": ev.get("reward_gain", 0.0 if name.startswith("sft") else None),
        "± se": ev.get("reward_gain_se"),
        "win-rate vs SFT": ev.get("win_rate"),
        "KL to SFT": ev.get("kl"),
        "exact match": em,
        "EM change": (em - em0) if em is not None and em0 is not None else None,
        "EM sampled": ev.get("exact_match_sampled"),
        "tokens/answer": ev.get("greedy_tokens"),
        "repeat rate": ev.get("repeat_rate"),
        "no-EOS rate": ev.get("no_eos_rate"),
        "train time (s)": m.get("train_seconds"),
        "train CPU s": m.get("train_cpu_seconds_main_process"),  # steadier than wall time on a shared machine
    }


def read_log(path: Path) -> list[dict]:
    import json
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


CURVE_KEYS = {"ppo": ("reward", "kl"), "rloo": ("reward", "kl"), "grpo": ("reward", "kl"),
              "dpo": ("rewards/margins", None)}


def plot_curves(out: Path) -> Path | None:
    from hfrepro.report import pyplot, save_figure
    series = {}
    for algo, (rk, kk) in CURVE_KEYS.items():
        log = [r for r in read_log(out / algo / "log.jsonl") if rk in r]
        if log:
            series[algo] = ([r["step"] for r in log], [r[rk] for r in log],
                            [r.get(kk) for r in log] if kk else None)
    if not series:
        return None
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for algo, (x, y, k) in series.items():
        a1.plot(x, y, marker=".", label=algo if algo != "dpo" else "dpo (implicit reward margin)")
        if k and any(v is not None for v in k):
            a2.plot(x, [v if v is not None else math.nan for v in k], marker=".", label=algo)
    a1.set(title="reward per step (training rollouts)", xlabel="update", ylabel="reward-model score")
    a2.set(title="KL to the reference (SFT) policy", xlabel="update", ylabel="nats per response")
    a1.legend(fontsize=8)
    a2.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out / "curves.png")


def _model_path(name: str) -> str:
    from hfrepro.models import resolve
    return resolve(name)


def _card_base(name: str) -> str | None:
    return "HuggingFaceTB/SmolLM2-135M-Instruct" if name == "smollm2-135m-instruct" else (
        name if "/" in name and not Path(name).exists() else None)


def arg_names() -> list[str]:
    return [f.name for f in fields(RLHFArguments)]
