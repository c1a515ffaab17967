"""hfrepro's PPO (hfrepro/rlhf/ppo.py) against trl 1.12's PPOTrainer, the last TRL that had one: the same seed,
prompts, models and hyper-parameters through both, in their own environments.

    .venv/bin/python bench/ppo.py --trl_python /work/venv-trl112/bin/python      # SmolLM2-135M, 6 updates x 8
    .venv/bin/python bench/ppo.py --model tiny --updates 4                        # a tiny random model: seconds

The trl side needs a second environment (trl 1.13+ has no PPOTrainer):
    python3 -m venv /work/venv-trl112 && /work/venv-trl112/bin/pip install torch==2.13.0
    /work/venv-trl112/bin/pip install transformers==5.23.0 trl==1.12.0 peft==0.21.2 accelerate==1.15.0 datasets==5.2.0

What is compared (bench/results/ppo.json, and a Markdown table):
- correctness: the rollouts of every update (the sampled token ids: identical, or the first update where they
  part), the mean reward-model score, and the per-update policy and value losses (within `--tolerance`,
  relative). hfrepro runs with `reward_after_eos: true` here, trl 1.12's placement of the score one token after
  EOS (hfrepro's default puts it on the last token of the response; see docs/rlhf.md);
- speed: seconds inside `train()` per update, CPU and wall, in runs that alternate trl, hfrepro, trl, hfrepro
  (each in a fresh process); the ratio hfrepro / trl per pair, and generation's share of each update.
  Target: hfrepro / trl <= 0.8 (CPU time per update).

The two sides share what the driver prepares: the prompts (token ids, from the embedded one-word-answer task),
the tokenizer with its pad token fixed, and a reward model (the first `--rm_layers` blocks of the policy with a
seeded score head: its scores are arbitrary but identical on both sides; speed and agreement do not need it
trained). The critic is the reward model with its top `--trainable_layers` blocks trained, on both sides.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

REPO = Path(__file__).resolve().parent.parent
ATOL = 1e-5  # absolute part of the loss tolerance: policy losses of whitened advantages are near 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct", help="policy; `tiny` = a tiny random chat model")
    ap.add_argument("--updates", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8, help="rollouts per update")
    ap.add_argument("--mini_batches", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--response_length", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="pairs of runs (trl, hfrepro), alternating")
    ap.add_argument("--rm_layers", type=int, default=16)
    ap.add_argument("--trainable_layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("HFREPRO_THREADS", 0)) or 1)
    ap.add_argument("--tolerance", type=float, default=1e-3, help="relative tolerance of the per-update losses "
                                                                   "(plus an absolute 1e-5)")
    ap.add_argument("--trl_python", default="/work/venv-trl112/bin/python")
    ap.add_argument("--out", default="bench/results/ppo.json")
    ap.add_argument("--side", choices=["trl", "hfrepro"], help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        spec = json.loads(Path(a.spec).read_text())
        res = side_trl(spec) if a.side == "trl" else side_hfrepro(spec)
        Path(spec["result"]).write_text(json.dumps(res))
        return
    driver(a)


# --- the driver (hfrepro's environment) --------------------------------------------------------------------------

def driver(a):
    tmp = Path(tempfile.mkdtemp(prefix="bench-ppo-"))
    spec = prepare(a, tmp)
    runs = {"trl": [], "hfrepro": []}
    for rep in range(a.repeats):
        for side in ("trl", "hfrepro"):
            python = a.trl_python if side == "trl" else sys.executable
            s = {**spec, "result": str(tmp / f"{side}-{rep}.json"), "output_dir": str(tmp / f"{side}-run-{rep}")}
            (tmp / "spec.json").write_text(json.dumps(s))
            env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(a.threads)}
            t0 = time.perf_counter()
            r = subprocess.run([python, __file__, "--side", side, "--spec", str(tmp / "spec.json")], env=env,
                               capture_output=True, text=True)
            if r.returncode:
                sys.exit(f"{side} failed:\n{r.stderr[-4000:]}")
            runs[side].append(json.loads(Path(s["result"]).read_text()))
            x = runs[side][-1]
            print(f"[bench] {side} run {rep + 1}: {x['cpu_per_update']:.2f} cpu-s/update, "
                  f"{x['wall_per_update']:.2f} s/update, generating {x['gen_share']:.0%} "
                  f"(process {time.perf_counter() - t0:.0f}s)", flush=True)
    report(a, spec, runs)


def prepare(a, tmp: Path) -> dict:
    """Prompts, tokenizer and reward model shared by both sides."""
    import torch

    from hfrepro import runtime
    from hfrepro.models import resolve
    from hfrepro.rlhf import prefs
    from hfrepro.rlhf.models import load_scorer, load_tokenizer

    runtime.setup(seed=0, threads=a.threads)
    if a.model == "tiny":
        sys.path.insert(0, str(REPO / "tests"))
        from rlhf_tiny import PREFS, make_tiny_chat_model
        policy = str(make_tiny_chat_model(tmp / "tiny"))
        rows = prefs.unique_prompts(prefs.load_preferences(str(PREFS))["train"])
        a.rm_layers, a.trainable_layers = 2, 1
    else:
        policy = resolve(a.model)
        rows = prefs.unique_prompts(prefs.embedded_preferences(0)["train"])
    tok = load_tokenizer(policy)
    tok.save_pretrained(tmp / "tok")
    torch.manual_seed(0)  # the score head's initialisation
    rm = load_scorer(policy, tok, layers=a.rm_layers)
    rm.save_pretrained(tmp / "rm")
    n = a.updates * a.batch
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0)).tolist()
    prompts = [prefs.encode_prompt(tok, rows[order[i % len(order)]]["prompt"]) for i in range(n)]  # this order
    return {"policy": policy, "tokenizer": str(tmp / "tok"), "reward_model": str(tmp / "rm"), "prompts": prompts,
            "updates": a.updates, "batch": a.batch, "mini_batches": a.mini_batches, "epochs": a.epochs,
            "response_length": a.response_length, "trainable_layers": a.trainable_layers, "threads": a.threads,
            "learning_rate": 3e-4, "kl_coef": 0.05, "temperature": 0.7, "missing_eos_penalty": 1.0, "seed": 0,
            "lora": {"r": 16, "lora_alpha": 32, "target_modules": "all-linear", "task_type": "CAUSAL_LM"}}


def report(a, spec: dict, runs: dict) -> None:
    from hfrepro.fsutil import atomic_write_json
    from hfrepro.report import md_table

    t, h = runs["trl"][0], runs["hfrepro"][0]
    agree = compare_runs(t, h, a.tolerance)
    ratios_cpu = [y["cpu_per_update"] / x["cpu_per_update"] for x, y in zip(runs["trl"], runs["hfrepro"])]
    ratios_wall = [y["wall_per_update"] / x["wall_per_update"] for x, y in zip(runs["trl"], runs["hfrepro"])]
    med = lambda xs: statistics.median(xs)  # noqa: E731
    table = [{"implementation": name, "cpu s/update (median)": med([r["cpu_per_update"] for r in rs]),
              "s/update wall (median)": med([r["wall_per_update"] for r in rs]),
              "generating (share of the update)": med([r["gen_share"] for r in rs])}
             for name, rs in (("trl 1.12 PPOTrainer", runs["trl"]), ("hfrepro PPOTrainer", runs["hfrepro"]))]
    res = {"settings": {k: v for k, v in spec.items() if k != "prompts"}, "model": a.model,
           "ratio_cpu": ratios_cpu, "ratio_wall": ratios_wall, "ratio_cpu_median": med(ratios_cpu),
           "ratio_wall_median": med(ratios_wall), "ratio_cpu_min": min(ratios_cpu), "ratio_cpu_max": max(ratios_cpu),
           "target_ratio": 0.8, "meets_target": med(ratios_cpu) <= 0.8,
           "agreement": agree, "table": table, "runs": runs, "load_average": os.getloadavg(),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores", "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_json(a.out, res)
    print(md_table(table))
    print(md_table(agree["per_update"]))
    print(f"hfrepro / trl per update: {med(ratios_cpu):.3f} cpu (median; min {min(ratios_cpu):.3f}, max "
          f"{max(ratios_cpu):.3f}; pairs {', '.join(f'{r:.3f}' for r in ratios_cpu)}), "
          f"{med(ratios_wall):.3f} wall; target <= 0.8; rollouts identical through update "
          f"{agree['identical_rollouts_through']} of {spec['updates']}; losses within {agree['tolerance']} "
          f"through update {agree['losses_within_tolerance_through']} -> {a.out}")


def compare_runs(t: dict, h: dict, tol: float) -> dict:
    rows, same_through, loss_through = [], 0, 0
    for i, (x, y) in enumerate(zip(t["updates"], h["updates"]), 1):
        same = x["responses"] == y["responses"] and x["queries"] == y["queries"]
        diff = {k: abs(x[k] - y[k]) for k in ("policy_loss", "value_loss", "reward", "kl")}
        ok = all(diff[k] <= tol * abs(x[k]) + ATOL for k in ("policy_loss", "value_loss"))
        same_through = i if same and same_through == i - 1 else same_through
        loss_through = i if ok and loss_through == i - 1 else loss_through
        rows.append({"update": i, "same rollouts": same, "reward trl": x["reward"], "reward hfrepro": y["reward"],
                     "policy loss trl": x["policy_loss"], "policy loss hfrepro": y["policy_loss"],
                     "value loss trl": x["value_loss"], "value loss hfrepro": y["value_loss"],
                     "max abs. difference (losses)": max(diff["policy_loss"], diff["value_loss"]),
                     "abs. difference (reward)": diff["reward"]})
    return {"identical_rollouts_through": same_through, "losses_within_tolerance_through": loss_through,
            "tolerance": f"|difference| <= {tol:g} x |trl| + {ATOL:g}", "per_update": rows}


# --- the sides -----------------------------------------------------------------------------------------------------

def _common(spec):
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(spec["threads"])
    tok = AutoTokenizer.from_pretrained(spec["tokenizer"])
    tok.padding_side = "left"
    policy = AutoModelForCausalLM.from_pretrained(spec["policy"], dtype=torch.float32)
    policy.config.pad_token_id = policy.generation_config.pad_token_id = tok.pad_token_id
    policy.generation_config.eos_token_id = tok.eos_token_id
    rm = AutoModelForSequenceClassification.from_pretrained(spec["reward_model"], num_labels=1, dtype=torch.float32)
    np.random.seed(spec["seed"])
    return tok, policy, rm


def _record(spec, rollouts: list, stats: list, seconds: float, cpu: float, gen: float) -> dict:
    n = spec["updates"]
    ups = [{**r, **s} for r, s in zip(rollouts, stats)]
    return {"updates": ups, "wall_per_update": seconds / n, "cpu_per_update": cpu / n, "gen_share": gen / seconds}


def side_trl(spec: dict) -> dict:
    """trl 1.12's PPOTrainer as its example script builds it; its data loader replaced by one yielding the
    driver's prompts in order (no shuffle, its own generator: the global random stream stays the sampler's)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as mod

    tok, policy, rm = _common(spec)
    ref = type(policy).from_pretrained(spec["policy"], dtype=torch.float32)
    ref.config.pad_token_id = tok.pad_token_id
    value = type(rm).from_pretrained(spec["reward_model"], num_labels=1, dtype=torch.float32)
    _freeze_below(value, spec["trainable_layers"])
    b = spec["batch"]
    cfg = PPOConfig(output_dir=spec["output_dir"], per_device_train_batch_size=b, gradient_accumulation_steps=1,
                    num_mini_batches=spec["mini_batches"], num_ppo_epochs=spec["epochs"],
                    total_episodes=spec["updates"] * b, learning_rate=spec["learning_rate"],
                    kl_coef=spec["kl_coef"], temperature=spec["temperature"],
                    response_length=spec["response_length"], stop_token="eos",
                    missing_eos_penalty=spec["missing_eos_penalty"], local_rollout_forward_batch_size=b,
                    num_sample_generations=0, logging_steps=1, seed=spec["seed"], save_strategy="no",
                    report_to="none", bf16=False, gradient_checkpointing=False, per_device_eval_batch_size=b,
                    disable_tqdm=True, dataloader_pin_memory=False)
    ds = Dataset.from_dict({"input_ids": spec["prompts"]})
    rollouts, stats, gen = [], [], [0.0]
    real = mod.batch_generation

    def batch_generation(model, queries, *args, **kw):
        g0 = time.perf_counter()
        qr, logits = real(model, queries, *args, **kw)
        gen[0] += time.perf_counter() - g0
        resp = qr[:, queries.shape[1]:]
        rollouts.append({"queries": [[t for t in q.tolist() if t != tok.pad_token_id] for q in queries],
                         "responses": [_cut(r.tolist(), tok) for r in resp]})
        return qr, logits
    mod.batch_generation = batch_generation

    class Stats(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss/policy_avg" in logs:
                stats.append({"policy_loss": logs["loss/policy_avg"], "value_loss": logs["loss/value_avg"],
                              "reward": logs["objective/scores"], "kl": logs["objective/kl"]})

    torch.manual_seed(spec["seed"])  # the LoRA initialisation
    trainer = PPOTrainer(args=cfg, processing_class=tok, model=policy, ref_model=ref, reward_model=rm,
                         value_model=value, train_dataset=ds, eval_dataset=ds.select(range(b)),
                         peft_config=LoraConfig(**spec["lora"]), callbacks=[Stats()])
    trainer.dataloader = DataLoader(ds, batch_size=b, shuffle=False, collate_fn=DataCollatorWithPadding(tok),
                                    generator=torch.Generator())
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.train()
    return _record(spec, rollouts, stats, time.perf_counter() - t0, time.process_time() - c0, gen[0])


def side_hfrepro(spec: dict) -> dict:
    import torch
    from peft import LoraConfig

    from hfrepro import runtime
    from hfrepro.rlhf import ppo as mod

    tok, policy, rm = _common(spec)
    b, mini = spec["batch"], spec["batch"] // spec["mini_batches"]
    cfg = runtime.make_training_args(
        mod.PPOConfig, output_dir=spec["output_dir"], algo="ppo", per_device_train_batch_size=mini,
        gradient_accumulation_steps=b // mini, num_mini_batches=spec["mini_batches"], num_ppo_epochs=spec["epochs"],
        total_episodes=spec["updates"] * b, learning_rate=spec["learning_rate"], kl_coef=spec["kl_coef"],
        temperature=spec["temperature"], response_length=spec["response_length"], stop_token="eos",
        missing_eos_penalty=spec["missing_eos_penalty"], local_rollout_forward_batch_size=b,
        value_trainable_layers=spec["trainable_layers"], reward_after_eos=True, max_grad_norm=0.0,
        samples_per_step=0, seed=spec["seed"], save_strategy="no", disable_tqdm=True)
    torch.manual_seed(spec["seed"])  # the LoRA initialisation
    trainer = mod.PPOTrainer(args=cfg, processing_class=tok, model=policy, reward_model=rm,
                             train_dataset=spec["prompts"], peft_config=LoraConfig(**spec["lora"]))
    trainer.prompt_batch = lambda i: spec["prompts"][i * b:(i + 1) * b]  # the driver's order, as on the trl side
    rollouts, real = [], trainer.rollout

    def rollout(prompts):
        ro = real(prompts)
        rollouts.append({"queries": [[t for t in q.tolist() if t != tok.pad_token_id] for q in ro.queries],
                         "responses": [_cut(r.tolist(), tok) for r in ro.responses]})
        return ro
    trainer.rollout = rollout
    m = trainer.train()
    stats = [{k: r[k] for k in ("policy_loss", "value_loss", "reward", "kl")} for r in trainer.log_history]
    return _record(spec, rollouts, stats, m["train_seconds"], m["train_cpu_seconds"], m["generate_seconds"])


def _cut(ids: list[int], tok) -> list[int]:
    out = []
    for t in ids:
        if t == tok.pad_token_id:
            break
        out.append(t)
        if t == tok.eos_token_id:
            break
    return out


def _freeze_below(model, trainable_layers: int) -> None:
    """The critic of both sides: only the top blocks, the final norm and the score head train."""
    backbone = getattr(model, model.base_model_prefix)
    blocks = backbone.layers
    for p in model.parameters():
        p.requires_grad_(False)
    for block in list(blocks)[len(blocks) - trainable_layers:]:
        for p in block.parameters():
            p.requires_grad_(True)
    for p in list(backbone.norm.parameters()) + list(model.score.parameters()):
        p.requires_grad_(True)


if __name__ == "__main__":
    main()
