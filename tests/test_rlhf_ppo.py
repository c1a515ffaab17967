"""hfrepro's PPO (hfrepro/rlhf/ppo.py) and the equations under it (hfrepro/rlhf/losses.py): each equation against
a hand-computed example; the trainer on a tiny random chat model (tests/rlhf_tiny.py): reward read at EOS, the
critic grown from the reward model, the ladder's advantages, determinism, kill and resume, two processes."""

from __future__ import annotations

import json
import math
import os
import sys

import pytest
import torch

from hfrepro.errors import UserError
from hfrepro.rlhf import losses as L
from hfrepro.rlhf.ppo import forward_inputs
from tests.conftest import REPO, launch_two

sys.path.insert(0, os.path.dirname(__file__))
from rlhf_tiny import PREFS, make_tiny_chat_model  # noqa: E402

T = torch.tensor


# --- the equations -------------------------------------------------------------------------------------------------

def test_gae_by_hand():
    rewards, values = T([[0.0, 0.0, 1.0]]), T([[0.5, 0.5, 0.5]])
    adv, ret = L.gae(rewards, values, gamma=1.0, lam=1.0)  # lambda 1: Monte-Carlo return minus V
    assert torch.allclose(adv, T([[0.5, 0.5, 0.5]])) and torch.allclose(ret, T([[1.0, 1.0, 1.0]]))
    adv, _ = L.gae(rewards, values, gamma=1.0, lam=0.0)  # lambda 0: one-step TD errors (V after the end is 0)
    assert torch.allclose(adv, T([[0.0, 0.0, 0.5]]))
    adv, ret = L.gae(rewards, values, gamma=0.9, lam=0.5)
    # delta = (-0.05, -0.05, 0.5); A2 = 0.5, A1 = -0.05 + 0.45 * 0.5, A0 = -0.05 + 0.45 * A1
    assert torch.allclose(adv, T([[0.02875, 0.175, 0.5]]))
    assert torch.allclose(ret, adv + values)
    adv, _ = L.gae(rewards, torch.zeros(1, 3), gamma=1.0, lam=1.0)  # REINFORCE: A_t = G_t
    assert torch.allclose(adv, T([[1.0, 1.0, 1.0]]))


def test_kl_estimators_by_hand():
    lp, ref = T([math.log(0.5)]), T([math.log(0.25)])
    assert L.kl_per_token(lp, ref, "k1").item() == pytest.approx(math.log(2))
    assert L.kl_per_token(lp, ref, "k3").item() == pytest.approx(-0.5 + math.log(2))
    assert L.kl_per_token(lp, lp, "k1").item() == 0.0 and L.kl_per_token(lp, lp, "k3").item() == 0.0
    with pytest.raises(ValueError):
        L.kl_per_token(lp, ref, "k2")


def test_whitening_by_hand():
    x, mask = T([[1.0, 2.0, 3.0, 100.0]]), T([[True, True, True, False]])
    w = L.masked_whiten(x, mask)  # mean 2, unbiased variance 1 over the three real entries
    assert torch.allclose(w[0, :3], T([-1.0, 0.0, 1.0]), atol=1e-4)
    assert torch.allclose(L.masked_whiten(x, mask, shift_mean=False)[0, :3], T([1.0, 2.0, 3.0]), atol=1e-4)
    with pytest.raises(ValueError):
        L.masked_var(x, T([[True, False, False, False]]))


def test_clipped_surrogate_by_hand():
    mask = T([[True]])
    cases = [  # ratio, advantage, expected loss, clipped?
        (1.5, 1.0, -1.2, 1.0),   # a good action pushed up too far: the gain is capped at 1 + eps
        (1.5, -1.0, 1.5, 0.0),   # a bad action made likelier: the full (pessimistic) loss
        (0.5, 1.0, -0.5, 0.0),   # a good action made rarer: the full loss
        (0.5, -1.0, 0.8, 1.0),   # a bad action pushed down too far: capped at 1 - eps
    ]
    for ratio, a, want, clipped in cases:
        old = T([[0.0]])
        loss, st = L.policy_loss(T([[math.log(ratio)]]), old, T([[a]]), mask, cliprange=0.2)
        assert loss.item() == pytest.approx(want) and st["clipfrac"].item() == clipped, (ratio, a)
    loss, st = L.policy_loss(T([[math.log(1.5)]]), T([[0.0]]), T([[1.0]]), mask, cliprange=None)
    assert loss.item() == pytest.approx(-1.5) and st["clipfrac"].item() == 0.0  # no clip: -A ratio


def test_policy_gradient_at_ratio_one_is_reinforce():
    new = T([[-1.0, -2.0]], requires_grad=True)
    adv, mask = T([[3.0, -1.0]]), T([[True, True]])
    loss, _ = L.policy_loss(new, new.detach(), adv, mask, cliprange=0.2)
    loss.backward()
    assert torch.allclose(new.grad, -adv / 2)  # d/dlogpi of -mean(A ratio) at ratio 1 = -A / n


def test_clipped_value_loss_by_hand():
    mask = T([[True]])
    loss, frac = L.value_loss(T([[2.0]]), T([[1.0]]), T([[0.0]]), mask, 0.2)
    assert loss.item() == pytest.approx(0.5 * 4.0) and frac.item() == 0.0  # unclipped (2-0)^2 > (1.2-0)^2
    loss, frac = L.value_loss(T([[0.5]]), T([[1.0]]), T([[2.0]]), mask, 0.2)
    assert loss.item() == pytest.approx(0.5 * 2.25)
    loss, frac = L.value_loss(T([[1.5]]), T([[1.0]]), T([[0.0]]), mask, 0.2)
    assert loss.item() == pytest.approx(0.5 * 2.25) and frac.item() == 0.0
    loss, frac = L.value_loss(T([[1.5]]), T([[1.0]]), T([[3.0]]), mask, 0.2)
    assert loss.item() == pytest.approx(0.5 * (3.0 - 1.2) ** 2) and frac.item() == 1.0  # the clipped one is worse
    loss, _ = L.value_loss(T([[1.5]]), T([[1.0]]), T([[3.0]]), mask, None)
    assert loss.item() == pytest.approx(0.5 * 1.5 ** 2)


def test_rewards_baseline_and_masks_by_hand():
    r = L.token_rewards(T([[0.1, 0.2, 0.3]]), T([2.0]), T([1]), kl_coef=0.5)
    assert torch.allclose(r, T([[-0.05, 1.9, -0.15]]))
    assert torch.allclose(L.leave_one_out_baseline(T([1.0, 2.0, 3.0, 5.0]), 2), T([2.0, 1.0, 5.0, 3.0]))
    assert torch.allclose(L.leave_one_out_baseline(T([1.0, 2.0, 6.0]), 3), T([4.0, 3.5, 1.5]))
    with pytest.raises(ValueError):
        L.leave_one_out_baseline(T([1.0]), 1)
    pad, eos = 9, 2
    resp = T([[5, eos, 7, 7], [5, 6, 7, 8]])
    cut = L.truncate_after(resp, eos, pad)
    assert cut.tolist() == [[5, eos, pad, pad], [5, 6, 7, 8]]
    mask, last = L.response_mask(cut, pad)
    assert last.tolist() == [1, 3] and mask.tolist() == [[True, True, False, False], [True] * 4]


# --- the trainer on a tiny model -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from hfrepro.rlhf import models, prefs

    folder = make_tiny_chat_model(tmp_path_factory.mktemp("tiny") / "model")
    tok = models.load_tokenizer(str(folder))
    rows = prefs.unique_prompts(prefs.load_preferences(str(PREFS))["train"])
    return folder, tok, rows, [prefs.encode_prompt(tok, r["prompt"]) for r in rows]


def make_trainer(tiny, tmp_path, run=None, **kw):
    from peft import LoraConfig

    from hfrepro import runtime
    from hfrepro.rlhf import models
    from hfrepro.rlhf.ppo import PPOConfig, PPOTrainer

    folder, tok, rows, prompts = tiny
    runtime.setup(seed=0, threads=1)
    settings = dict(output_dir=str(tmp_path), algo="ppo", per_device_train_batch_size=2,
                    gradient_accumulation_steps=2, num_generations=2, num_mini_batches=2, num_ppo_epochs=2,
                    total_episodes=12, response_length=4, temperature=1.0, missing_eos_penalty=1.0,
                    learning_rate=1e-3, value_trainable_layers=1, save_strategy="no", seed=0, samples_per_step=1)
    cfg = runtime.make_training_args(PPOConfig, **{**settings, **kw})
    torch.manual_seed(0)
    rm = models.load_scorer(str(folder), tok)
    policy = models.load_policy(str(folder), tok)
    return PPOTrainer(args=cfg, processing_class=tok, model=policy, reward_model=rm, train_dataset=prompts, run=run,
                      peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))


def test_rollout_reads_the_reward_at_eos_and_starts_at_kl_zero(tiny, tmp_path):
    from hfrepro.rlhf.models import score

    tr = make_trainer(tiny, tmp_path)
    torch.manual_seed(1)
    ro = tr.rollout(tr.prompt_batch(0))
    tok = tiny[1]
    for i in range(len(ro.scores)):
        prompt = [t for t in ro.queries[i].tolist() if t != tok.pad_token_id]
        resp = ro.responses[i][ro.mask[i]].tolist()
        penalty = 0.0 if ro.ended[i] else 1.0
        assert ro.scores[i].item() == pytest.approx(score(tr.reward_model, [prompt + resp], tok.pad_token_id)[0]
                                                    - penalty, abs=1e-4)
    # the adapter starts at zero: policy == reference, KL 0 on every token
    assert torch.allclose(ro.logprobs[ro.mask], ro.ref_logprobs[ro.mask], atol=1e-4)
    assert (ro.logprobs[~ro.mask] == L.INVALID_LOGPROB).all()
    # the critic starts as the reward model: its V on the states equals the reward model's score there
    seq = torch.cat([ro.queries, ro.responses], 1)
    n = ro.responses.shape[1]
    with torch.no_grad():  # the reward model's score at every position, read by hand
        hidden = tr.reward_model.model(**forward_inputs(seq, tok.pad_token_id)).last_hidden_state
        rm_values = tr.reward_model.score(hidden)[:, -(n + 1):-1, 0]
    assert torch.allclose(ro.values[ro.value_mask], rm_values[ro.value_mask], atol=1e-4)


def test_prompt_batches_are_a_pure_function_of_seed_and_index(tiny, tmp_path):
    tr = make_trainer(tiny, tmp_path)
    a, b = tr.prompt_batch(3), tr.prompt_batch(3)
    assert a == b and a[0] == a[1] and a[2] == a[3]  # each prompt twice (num_generations 2), side by side
    assert tr.prompt_batch(0) != tr.prompt_batch(1)


@pytest.mark.parametrize("algo", ["reinforce", "rloo", "a2c", "ppo"])
def test_every_rung_trains_and_logs_the_gradient_variance(tiny, tmp_path, algo):
    tr = make_trainer(tiny, tmp_path, algo=algo)
    # the kept module and parameter list are accelerate's and the policy's (they are read instead of walked)
    assert tr.unwrapped is tr.accelerator.unwrap_model(tr.model)
    assert tr._policy_params == [p for p in tr.policy.parameters() if p.requires_grad]
    m = tr.train()
    log = tr.log_history
    assert m["updates"] == 3 and [r["step"] for r in log] == [1, 2, 3] and m["algo"] == algo
    for r in log:
        assert r["grad_var"] > 0 and r["grad_samples"] == 2  # 4 rollouts, micro-batches of 2
        assert ("value_loss" in r) == (algo in ("a2c", "ppo"))
        assert all(math.isfinite(r[k]) for k in ("reward", "kl", "policy_loss"))
    if algo != "ppo":
        assert all(r["clipfrac"] == 0.0 for r in log)


def test_rloo_advantages_sum_to_zero_per_prompt(tiny, tmp_path):
    tr = make_trainer(tiny, tmp_path, algo="rloo", kl_coef=0.0)
    torch.manual_seed(2)
    ro = tr.rollout(tr.prompt_batch(0))
    adv, _, _ = tr.advantages(ro)
    last = ro.mask.sum(1) - 1
    at_end = adv[torch.arange(len(adv)), last]  # with no KL, A at the last token = score - the other's score
    assert torch.allclose(at_end.view(-1, 2).sum(1), torch.zeros(len(adv) // 2), atol=1e-5)
    assert torch.allclose(at_end[0::2], ro.scores[0::2] - ro.scores[1::2], atol=1e-5)


def test_bad_settings_are_user_errors(tiny, tmp_path):
    with pytest.raises(UserError, match="rloo needs"):
        make_trainer(tiny, tmp_path, algo="rloo", num_generations=1)
    with pytest.raises(UserError, match="unknown algo"):
        make_trainer(tiny, tmp_path, algo="trpo")
    with pytest.raises(UserError, match="must split"):
        make_trainer(tiny, tmp_path, per_device_train_batch_size=3, gradient_accumulation_steps=1)


def test_same_seed_same_numbers_and_resume_continues_exactly(tiny, tmp_path, monkeypatch):
    """Killed right after the checkpoint of update 2, the same run resumes from it and logs exactly what the
    uninterrupted run logs (weights, optimizer, schedule and every random stream restored)."""
    from hfrepro import runtime
    from hfrepro.rlhf import ppo

    def run_in(folder):
        return runtime.Run.begin(folder, {"x": 1})

    whole = make_trainer(tiny, tmp_path / "a", total_episodes=16, run=run_in(tmp_path / "a"))
    whole.train()
    keys = ("reward", "kl", "policy_loss", "value_loss", "grad_var", "lr")
    ref = [{k: r[k] for k in keys} for r in whole.log_history]

    cut = tmp_path / "b"
    tr = make_trainer(tiny, cut, total_episodes=16, save_steps=2, save_strategy="steps", run=run_in(cut))
    real = ppo.PPOTrainer.save_checkpoint

    def save_then_die(self, update):
        real(self, update)
        raise KeyboardInterrupt
    monkeypatch.setattr(ppo.PPOTrainer, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        tr.train()
    tr.run.close()
    monkeypatch.setattr(ppo.PPOTrainer, "save_checkpoint", real)
    assert runtime.last_checkpoint(cut) == str(cut / "checkpoint-2")
    ck = cut / "checkpoint-2"
    assert sum(f.stat().st_size for f in ck.iterdir()) < 3 * sum(p.numel() * 4 for p in tr.model.parameters()
                                                                   if p.requires_grad) + 200_000  # trained only
    run = run_in(cut)
    assert run.resume_from == str(ck)
    again = make_trainer(tiny, cut, total_episodes=16, save_steps=2, save_strategy="steps", run=run)
    m = again.train(resume_from_checkpoint=run.resume_from)
    assert m["resumed_from"] == 2 and m["updates_this_session"] == 2
    got = [{k: r[k] for k in keys} for r in again.log_history]
    assert got == ref[2:]
    logged = [r["step"] for r in runtime.read_log(cut / "log.jsonl")]
    assert logged == [1, 2, 3, 4]
    samples = [json.loads(x)["step"] for x in (cut / "samples.jsonl").read_text().splitlines()]
    assert samples == [1, 2, 3, 4]


def test_saved_policy_is_a_complete_model(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    tr = make_trainer(tiny, tmp_path, total_episodes=4)
    tr.train()
    tr.save_model(tmp_path / "out")
    assert not (tmp_path / "out" / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert model.config.num_hidden_layers == 2


@pytest.mark.integration
def test_two_processes_train_one_policy(tiny, tmp_path):
    """`accelerate launch` with 2 CPU processes: world size 2, each process its share of the prompts, one
    policy (DDP keeps the copies equal), a checkpoint and the merged model saved once."""
    out = tmp_path / "ppo2"
    folder = tiny[0]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "recipes/accelerate/cpu_2proc.yaml",
           "--main_process_port", "29531", "recipes/ppo.py", "--budget", "tiny", "--model", str(folder),
           "--reward_model_path", str(folder), "--dataset", str(PREFS), "--output_dir", str(out),
           "--total_episodes", "16", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2",
           "--response_length", "4", "--eval_prompts", "2", "--lora_r", "4", "--lora_alpha", "8",
           "--value_trainable_layers", "1", "--save_steps", "1", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    r = launch_two(cmd, fresh=out, cwd=REPO, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["updates"] == 2
    assert (out / "model.safetensors").is_file() and (out / "checkpoint-1" / "trainer_state.json").is_file()
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log] == [1, 2] and log[0]["episode"] == 8


def test_adapter_in_the_top_blocks_reuses_the_frozen_lower_ones(tiny, tmp_path, monkeypatch):
    """LoRA in the top block only: the block below runs once per rollout (`split` 1) and the updates are those
    of the same trainer computing every pass through the whole model."""
    from peft import LoraConfig

    from hfrepro.rlhf import ppo

    def trainer(folder):
        tr = make_trainer(tiny, folder)
        return tr

    top = LoraConfig(r=4, lora_alpha=8, target_modules=["model.layers.1.self_attn.q_proj",
                                                        "model.layers.1.mlp.down_proj"], task_type="CAUSAL_LM")
    real = ppo.PPOTrainer.__init__

    def with_top_adapter(self, *a, **kw):
        real(self, *a, **{**kw, "peft_config": top})
    monkeypatch.setattr(ppo.PPOTrainer, "__init__", with_top_adapter)
    split = trainer(tmp_path / "a")
    assert split.split == 1
    split.train()
    monkeypatch.setattr(ppo, "first_trained_block", lambda model: 0)
    whole = trainer(tmp_path / "b")
    assert whole.split == 0
    whole.train()
    for a, b in zip(split.log_history, whole.log_history):
        for k in ("reward", "kl", "policy_loss", "value_loss"):
            assert a[k] == pytest.approx(b[k], abs=1e-4), k
    # the reward model (the same folder) shares the block below the adapter; unsplit, nothing is shared
    assert (split.metrics()["frozen_blocks"], split.metrics()["blocks_shared_with_reward_model"]) == (1, 1)
    assert (whole.metrics()["frozen_blocks"], whole.metrics()["blocks_shared_with_reward_model"]) == (0, 0)


@pytest.mark.parametrize("case", ["critic-reads-the-shared-blocks", "reward-model-differs-above"])
def test_blocks_shared_with_the_reward_model_give_the_same_rollouts(tmp_path, case):
    """Three blocks, the adapter in the top one: the reward model's lowest block is the policy's, so one pass of
    it serves both (`shared` 1), and every measured tensor equals that of the separate passes, bit for bit: the
    critic reading the shared block's output, or (the reward model's block 1 changed) a block of its own."""
    from peft import LoraConfig

    from hfrepro import runtime
    from hfrepro.rlhf import models, prefs
    from hfrepro.rlhf.ppo import PPOConfig, PPOTrainer

    folder = make_tiny_chat_model(tmp_path / "model", layers=3)
    tok = models.load_tokenizer(str(folder))
    prompts = [prefs.encode_prompt(tok, r["prompt"])
               for r in prefs.unique_prompts(prefs.load_preferences(str(PREFS))["train"])]
    runtime.setup(seed=0, threads=1)
    cfg = runtime.make_training_args(
        PPOConfig, output_dir=str(tmp_path / "run"), algo="ppo", per_device_train_batch_size=2,
        gradient_accumulation_steps=2, num_generations=2, total_episodes=8, response_length=4, seed=0,
        value_trainable_layers=2 if case == "critic-reads-the-shared-blocks" else 1, save_strategy="no",
        local_rollout_forward_batch_size=2)
    rm = models.load_scorer(str(folder), tok)
    if case == "reward-model-differs-above":
        with torch.no_grad():
            rm.model.layers[1].mlp.down_proj.weight.mul_(1.5)
    top = LoraConfig(r=4, lora_alpha=8, target_modules=["model.layers.2.self_attn.q_proj"], task_type="CAUSAL_LM")
    tr = PPOTrainer(args=cfg, processing_class=tok, model=models.load_policy(str(folder), tok), reward_model=rm,
                    train_dataset=prompts, peft_config=top)
    assert (tr.split, tr.shared) == (2, 1)

    def rollout():
        torch.manual_seed(1)
        return tr.rollout(tr.prompt_batch(0))

    shared = rollout()
    tr.shared = 0
    separate = rollout()
    for name in ("responses", "logprobs", "ref_logprobs", "scores", "values", "hidden", "policy_hidden"):
        assert torch.equal(getattr(shared, name), getattr(separate, name)), name


def test_score_and_hidden_reads_any_layer_with_or_without_shared_blocks(tiny):
    """The critic's input: the hidden states entering block `layer` (0: the embeddings' output, a critic over
    every block), from one pass of the reward model, or from the states entering block k computed before."""
    from hfrepro.rlhf import models
    from hfrepro.rlhf.blocks import decoder_views, upper_view
    from hfrepro.rlhf.ppo import score_and_hidden

    folder, tok, _, prompts = tiny
    rm = models.load_scorer(str(folder), tok)
    seq = torch.tensor([prompts[0][-6:], prompts[1][-6:]])
    end = torch.tensor([5, 5])
    inputs = forward_inputs(seq, tok.pad_token_id)
    full = rm.model(**inputs, output_hidden_states=True, use_cache=False).hidden_states
    h1 = decoder_views(rm, 1)[0](**inputs, use_cache=False).last_hidden_state
    for layer in (0, 1, 2):
        scores, hidden = score_and_hidden(rm, seq, end, tok.pad_token_id, layer)
        assert torch.equal(hidden, full[layer]), layer
        if layer >= 1:
            s2, h2 = score_and_hidden(rm, seq, end, tok.pad_token_id, layer, below=(1, upper_view(rm, 1), h1))
            assert torch.equal(h2, full[layer]) and torch.equal(s2, scores), layer
    assert score_and_hidden(rm, seq, end, tok.pad_token_id, None)[1] is None


def test_shared_lower_blocks_stops_at_the_first_difference(tiny):
    from hfrepro.rlhf import models
    from hfrepro.rlhf.blocks import shared_lower_blocks

    folder, tok, _, _ = tiny
    policy, rm = models.load_policy(str(folder), tok), models.load_scorer(str(folder), tok)
    assert shared_lower_blocks(policy, rm, limit=5) == 1  # 2 blocks: the reward model keeps its top one
    assert shared_lower_blocks(policy, rm, limit=0) == 0
    with torch.no_grad():
        rm.model.layers[0].input_layernorm.weight.add_(1e-3)
    assert shared_lower_blocks(policy, rm, limit=5) == 0
    rm = models.load_scorer(str(folder), tok)
    with torch.no_grad():
        rm.model.embed_tokens.weight[0] += 1.0
    assert shared_lower_blocks(policy, rm, limit=5) == 0
    assert shared_lower_blocks(policy, models.load_scorer(str(folder), tok).to(torch.bfloat16), limit=5) == 0


def test_split_views_equal_the_whole_model(tiny):
    from hfrepro.rlhf import models
    from hfrepro.rlhf.blocks import check_split, decoder_views

    folder, tok, _, _ = tiny
    model = models.load_policy(str(folder), tok)
    assert check_split(model, 1, head=model.get_output_embeddings())
    lower, upper = decoder_views(model, 1)
    assert len(lower.layers) == 1 and len(upper.layers) == 1 and len(model.model.layers) == 2  # untouched
    assert upper.layers[0] is model.model.layers[1]  # shared, not copied


# --- KV-cached sampling with shared prompts -----------------------------------------------------------------------

def test_sampler_equals_transformers_generate_and_scores_equal_full_passes(tiny):
    """Each prompt run once, its cache copied for n answers: the same tokens as `generate` on n copies of the
    prompt (greedy, and sampled from the same random stream), the same log-probs and reward scores as full
    teacher-forced passes."""
    from hfrepro.rlhf import evaluate, models, sampling
    from hfrepro.rlhf.reward import score_answers

    folder, tok, _, prompts = tiny
    P = prompts[:5]
    m = models.load_frozen(str(folder), tok)
    pad, eos = tok.pad_token_id, tok.eos_token_id

    def hf(batch, temperature, seed):
        ids, mask = sampling.left_pad(batch, pad)
        torch.manual_seed(seed)
        kw = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if temperature else {}
        out = m.generate(input_ids=ids.masked_fill(mask == 0, 0), attention_mask=mask, max_new_tokens=6,
                         pad_token_id=pad, eos_token_id=eos, **kw)
        return out[:, ids.shape[1]:]

    assert torch.equal(hf(P, None, 0), sampling.sample(m, P, 1, 6, None, eos, pad)[0])
    n = 3
    copies = [p for p in P for _ in range(n)]
    torch.manual_seed(7)
    mine, lp = sampling.sample(m, P, n, 6, 0.9, eos, pad)
    assert torch.equal(hf(copies, 0.9, 7), mine)
    rows = sampling.rows_of(len(P), n)
    again = sampling.answer_logprobs(m, P, mine, rows, 0.9, pad)
    real = mine != pad
    assert torch.allclose(lp[real], again[real], atol=1e-5)
    answers = [r[r != pad].tolist() for r in mine]
    full = evaluate.sequence_logprobs(m, tok, copies, answers, 0.9)  # n = 1: every copy runs its prompt
    assert full == pytest.approx([float(x) for x in (again * real).sum(1)], abs=1e-4)
    rm = models.load_scorer(str(folder), tok)
    shared = score_answers(rm, tok, [(tuple(p), tuple(a)) for p, a in zip(copies, answers)])
    assert shared == pytest.approx(models.score(rm, [p + a for p, a in zip(copies, answers)], pad), abs=1e-5)


def test_answer_logprobs_in_chunks_of_rows_equal_one_pass(tiny, monkeypatch):
    """The vocabulary's logits are made for ANSWER_ROWS answers at a time (memory): the log-probs are those of all
    the rows at once, a last partial chunk included."""
    from hfrepro.rlhf import models, sampling

    folder, tok, _, prompts = tiny
    P, n = prompts[:5], 4                                    # 20 answers: chunks of 16 and 4 (or 8, 8 and 4)
    m = models.load_frozen(str(folder), tok)
    torch.manual_seed(3)
    answers, _ = sampling.sample(m, P, n, 6, 1.0, tok.eos_token_id, tok.pad_token_id)
    rows = sampling.rows_of(len(P), n)
    chunked = sampling.answer_logprobs(m, P, answers, rows, 0.8, tok.pad_token_id)
    monkeypatch.setattr(sampling, "ANSWER_ROWS", 10**6)
    whole = sampling.answer_logprobs(m, P, answers, rows, 0.8, tok.pad_token_id)
    monkeypatch.setattr(sampling, "ANSWER_ROWS", 8)
    eights = sampling.answer_logprobs(m, P, answers, rows, 0.8, tok.pad_token_id)
    assert chunked.shape == whole.shape == (len(P) * n, answers.shape[1])
    assert torch.allclose(chunked, whole, atol=1e-6) and torch.allclose(eights, whole, atol=1e-6)
