"""Held-out evaluation of a policy, identical for SFT, PPO, RLOO, GRPO and DPO.

On prompts none of the stages trained on:

- **reward**: the reward model's score of a sampled response (temperature = the RL temperature), read at EOS,
  minus the missing-EOS penalty when the response hits the length limit: the quantity RL maximises;
- **KL to the reference** (the SFT policy): mean over prompts of sum_t [log pi(y_t) - log pi_ref(y_t)] on the
  policy's own samples, both distributions at that temperature (TRL's PPO `objective/kl`, k1 estimator);
- **win-rate** over the SFT policy: the reward model prefers the policy's greedy answer (ties count one half);
- **exact match** (the independent metric, no reward model involved): the greedy answer equals the gold answer,
  and the same on the sampled answers;
- **echo rate**: share of answers that repeat a word of the question back ("Greece" for the capital of
  Greece), the reward hack this task invites, checked without the reward model (`prefs.echoes`);
- **other reward-hacking signs**: response length (tokens, words), share of responses repeating a word, share
  that never emit EOS.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from statistics import mean

from hfrepro import runtime
from hfrepro.fsutil import atomic_write_json, atomic_write_text, read_json
from hfrepro.rlhf.models import load_frozen
from hfrepro.rlhf.prefs import echoes, encode_prompt, exact_match
from hfrepro.rlhf.sampling import answer_logprobs, answer_scores, pad_answers, rows_of, sample


def _batches(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def generate(model, tok, prompts: list[list[int]], max_new_tokens: int, temperature: float | None, n: int = 1,
             batch_size: int = 32, seed: int = 0):
    """n responses per prompt (prompt after prompt; token ids cut after EOS) and, when sampling, the sum of their
    log-probabilities at `temperature`. Greedy when temperature is None. Each prompt runs once
    (hfrepro/rlhf/sampling.py); the sampling stream is seeded by `seed` alone."""
    import torch

    model.eval()
    out_ids, out_lp = [], []
    g = torch.Generator().manual_seed(seed)
    for chunk in _batches(prompts, batch_size):
        if temperature:
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        resp, lp = sample(model, chunk, n, max_new_tokens, temperature, tok.eos_token_id, tok.pad_token_id)
        for row, row_lp in zip(resp.tolist(), lp.tolist()):
            k = len(_cut(row, tok))
            out_ids.append(row[:k])
            out_lp.append(sum(row_lp[:k]))
    return out_ids, out_lp


def _cut(ids: list[int], tok) -> list[int]:
    """The response up to its first pad (the generation fills with pad after EOS)."""
    return ids[:ids.index(tok.pad_token_id)] if tok.pad_token_id in ids else ids


def sequence_logprobs(model, tok, prompts: list[list[int]], responses: list[list[int]], temperature: float,
                      n: int = 1, batch_size: int = 32) -> list[float]:
    """Sum of log pi(response | prompt) at `temperature` by one teacher-forced pass; `responses` holds n per
    prompt, prompt after prompt."""
    model.eval()
    out = []
    for i in range(0, len(prompts), batch_size):
        chunk, resp = prompts[i:i + batch_size], responses[i * n:(i + batch_size) * n]
        answers = pad_answers(resp, tok.pad_token_id)
        lp = answer_logprobs(model, chunk, answers, rows_of(len(chunk), n), temperature, tok.pad_token_id)
        out += [float(lp[j, :len(r)].sum()) for j, r in enumerate(resp)]
    return out


def rewards(rm, tok, prompts: list[list[int]], responses: list[list[int]], missing_eos_penalty: float, n: int = 1,
            batch_size: int = 32) -> list[float]:
    """Reward-model score at the response's last token (EOS), minus the penalty for a response that never ended
    (as in training); `responses` holds n per prompt, prompt after prompt."""
    rm.eval()
    out = []
    for i in range(0, len(prompts), batch_size):
        chunk, resp = prompts[i:i + batch_size], responses[i * n:(i + batch_size) * n]
        s = answer_scores(rm, chunk, pad_answers(resp, tok.pad_token_id), rows_of(len(chunk), n), tok.pad_token_id)
        out += [v - (0.0 if r and r[-1] == tok.eos_token_id else missing_eos_penalty)
                for v, r in zip(s.tolist(), resp)]
    return out


def _repeats(text: str) -> bool:
    words = re.findall(r"\w+", text.lower())
    return len(words) != len(set(words))


def evaluate_policy(policy, tok, rows: list[dict], *, reference=None, rm, max_new_tokens: int, temperature: float,
                    missing_eos_penalty: float, seed: int, baseline: dict | None = None, samples: int = 1,
                    batch_size: int = 32) -> tuple[dict, list[dict]]:
    """Metrics of `policy` on held-out `rows` ({prompt, answer?}); `reference` None means the policy is its own
    reference (KL 0). `baseline` = the SFT policy's per-prompt records, for the win-rate and the paired reward
    gain. `samples` answers are sampled per prompt (their mean lowers the noise of reward, KL, sampled EM)."""
    prompts = [encode_prompt(tok, r["prompt"]) for r in rows]
    k = max(1, samples)
    greedy, _ = generate(policy, tok, prompts, max_new_tokens, None, 1, batch_size)
    sampled, lp = generate(policy, tok, prompts, max_new_tokens, temperature, k, batch_size, seed=seed)
    if reference is None:
        kl = [0.0] * len(sampled)
    else:
        lp_ref = sequence_logprobs(reference, tok, prompts, sampled, temperature, k, batch_size)
        kl = [a - b for a, b in zip(lp, lp_ref)]
    r_s = rewards(rm, tok, prompts, sampled, missing_eos_penalty, k, batch_size)
    r_g = rewards(rm, tok, prompts, greedy, missing_eos_penalty, 1, batch_size)
    recs = []
    for i, row in enumerate(rows):
        sl = slice(i * k, (i + 1) * k)
        g_txt = tok.decode(greedy[i], skip_special_tokens=True)
        s_txts = [tok.decode(x, skip_special_tokens=True) for x in sampled[sl]]
        rec = {"prompt": _user_text(row["prompt"]), "answer": row.get("answer"), "relation": row.get("relation"),
               "greedy": g_txt, "sampled": s_txts[0], "reward_sampled": round(mean(r_s[sl]), 4),
               "reward_greedy": round(r_g[i], 4), "kl": round(mean(kl[sl]), 4), "greedy_tokens": len(greedy[i]),
               "sampled_tokens": mean(len(x) for x in sampled[sl]),
               "sampled_ended": mean(bool(x and x[-1] == tok.eos_token_id) for x in sampled[sl]),
               "greedy_ended": bool(greedy[i] and greedy[i][-1] == tok.eos_token_id),
               "sampled_repeats": mean(_repeats(t) for t in s_txts)}
        if k > 1:
            rec["sampled_all"] = s_txts
        if row.get("answer"):
            rec["em_greedy"] = exact_match(g_txt, row["answer"])
            rec["em_sampled"] = mean(exact_match(t, row["answer"]) for t in s_txts)
        rec["echo_greedy"] = echoes(g_txt, rec["prompt"], row.get("answer"))
        rec["echo_sampled"] = mean(echoes(t, rec["prompt"], row.get("answer")) for t in s_txts)
        recs.append(rec)
    m = {
        "prompts": len(rows),
        "reward": mean(r_s), "reward_se": _se(r_s),
        "reward_greedy": mean(r_g),
        "kl": mean(kl), "kl_se": _se(kl),
        "greedy_tokens": mean(r["greedy_tokens"] for r in recs),
        "sampled_tokens": mean(r["sampled_tokens"] for r in recs),
        "greedy_words": mean(len(r["greedy"].split()) for r in recs),
        "samples_per_prompt": k,
        "repeat_rate": mean(max(float(_repeats(r["greedy"])), r["sampled_repeats"]) for r in recs),
        "no_eos_rate": mean(1.0 - r["sampled_ended"] for r in recs),
        "echo_rate": mean(r["echo_greedy"] for r in recs),
        "echo_rate_sampled": mean(r["echo_sampled"] for r in recs),
    }
    if all("em_greedy" in r for r in recs):
        m["exact_match"] = mean(r["em_greedy"] for r in recs)
        m["exact_match_sampled"] = mean(r["em_sampled"] for r in recs)
    if baseline is not None:
        diffs = [r["reward_greedy"] - b["reward_greedy"] for r, b in zip(recs, baseline)]
        m["win_rate"] = mean(1.0 if d > 1e-6 else 0.5 if abs(d) <= 1e-6 else 0.0 for d in diffs)
        m["same_answer_rate"] = mean(r["greedy"] == b["greedy"] for r, b in zip(recs, baseline))
        gain = [r["reward_sampled"] - b["reward_sampled"] for r, b in zip(recs, baseline)]
        m["reward_gain"] = mean(gain)
        m["reward_gain_se"] = _se(gain)
    return m, recs


def task_metrics(tok, rows: list[dict]):
    """For the RL trainers' logs: exact match and echo rate of each batch of training rollouts, by looking up
    each prompt's question and gold answer (measures the policy is not trained on)."""
    by_prompt = {tuple(encode_prompt(tok, r["prompt"])): (_user_text(r["prompt"]), r.get("answer")) for r in rows}

    def metrics(prompts: list[list[int]], responses: list[str]) -> dict:
        found = [(by_prompt.get(tuple(p)), t) for p, t in zip(prompts, responses)]
        found = [(q, a, t) for (q, a), t in ((f, t) for f, t in found if f is not None)]
        if not found:
            return {}
        out = {"echo_rate": mean(echoes(t, q, a) for q, a, t in found)}
        if all(a for _, a, _ in found):
            out["exact_match"] = mean(exact_match(t, a) for _, a, t in found)
        return out

    return metrics


def _se(xs: list[float]) -> float:
    if len(xs) < 2:
        return float("nan")
    mu = mean(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def _user_text(prompt) -> str:
    if isinstance(prompt, list):
        users = [m["content"] for m in prompt if m.get("role") == "user"]
        return users[-1] if users else prompt[-1]["content"]
    return prompt


# --- cached on disk, one per policy folder ------------------------------------------------------------------

def evaluate_cached(folder: str | Path, *, reference: str | Path | None, reward_model: str | Path, tok,
                    rows: list[dict], temperature: float, max_new_tokens: int, missing_eos_penalty: float,
                    seed: int, samples: int = 1, baseline: list[dict] | None = None, model: str | Path | None = None,
                    name: str = "eval") -> tuple[dict | None, list[dict] | None]:
    """Evaluate the policy saved in `folder` (or `model`) on held-out `rows`, on the main process, into
    folder/<name>.json and folder/<name>_samples.jsonl; a later call with the same settings and the same model
    files reads them back. Every process calls it; returns (metrics, per-prompt records) on the main process,
    (None, None) on the others."""
    folder = Path(folder)
    model = Path(model or folder)
    f, fs = folder / f"{name}.json", folder / f"{name}_samples.jsonl"
    key = {"eval_prompts": len(rows), "samples": samples, "temperature": temperature,
           "max_new_tokens": max_new_tokens, "seed": seed, "missing_eos_penalty": missing_eos_penalty,
           "reference": str(reference) if reference is not None else None, "reward_model": str(reward_model),
           "model_mtime": _mtime(model), "rm_mtime": _mtime(reward_model)}
    m = recs = None
    if runtime.is_main_process():
        if f.is_file() and fs.is_file() and read_json(f).get("key") == key:
            m = {k: v for k, v in read_json(f).items() if k != "key"}
            recs = [json.loads(line) for line in fs.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            t0 = time.perf_counter()
            print(f"[rlhf] evaluating {model} on {len(rows)} held-out prompts", flush=True)
            runtime.release_memory()  # what the training steps before freed: the three models load into it
            policy = load_frozen(model, tok)
            ref = load_frozen(reference, tok) if reference is not None else None
            rm = load_frozen(reward_model, tok, kind="scorer")
            m, recs = evaluate_policy(policy, tok, rows, reference=ref, rm=rm, max_new_tokens=max_new_tokens,
                                      temperature=temperature, missing_eos_penalty=missing_eos_penalty,
                                      seed=seed, baseline=baseline, samples=samples)
            m["eval_seconds"] = round(time.perf_counter() - t0, 2)
            atomic_write_text(fs, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
            atomic_write_json(f, {"key": key, **m})
    runtime.wait_for_everyone()
    return m, recs


def _mtime(folder: str | Path) -> float | None:
    f = Path(folder) / "model.safetensors"
    return f.stat().st_mtime if f.is_file() else None
