"""Declining harmful requests without refusing benign ones: SFT -> reward model -> GRPO (TRL), measured.

ChatGPT "is trained to decline inappropriate requests", and InstructGPT's alignment training (Ouyang et al.
2022) changed behaviour without wrecking helpfulness. This recipe does the three steps on a real instruct model
(SmolLM2-135M-Instruct) and measures, on held-out requests of the harmlessness set (data_cards/harmlessness.md),
the **refusal rate** on requests to decline (violent, sexual, self-harm, hateful, dangerous) and the
**over-refusal rate** on benign look-alikes (medical, legal, security, chemistry, ... questions), for:

(0) the base model, greedy, as shipped (its own chat template and system prompt);
(1) SFT: LoRA with TRL's SFTTrainer on refusal demonstrations for the requests to decline and on the base
    model's own answers to benign training prompts (so SFT teaches *when* to refuse, not new answers);
(2) a reward model, TRL's RewardTrainer on preference pairs from the SFT policy's own sampled replies (a refusal >
    an answer for a request to decline, an answer > a refusal for a benign one; the written pair, a refusal vs
    the base model's reply, where the samples are all of one kind), the first blocks of the base model with a
    one-output head;
(3) RLHF: TRL's GRPOTrainer from the SFT policy, rewarded by that reward model.

A reply is a refusal by the rule of `hfrepro.chatgpt.refusal` (refusal words in its opening), tested on PyRIT's
human-labelled responses. Every held-out prompt and the three replies go to eval.jsonl.

Usage:
    hfrepro harmless                                   # recipes/configs/harmless/default.yaml
    hfrepro harmless --budget tiny                     # a smoke run
    hfrepro harmless --dataset my_requests.jsonl       # {"prompt", "label": decline|answer, "category"} per line
    hfrepro harmless --grpo_steps 24 --output_dir runs/harmless-24
    hfrepro chat --model runs/harmless                 # talk to the aligned model (when --save_model)
"""

import time
from dataclasses import dataclass, field

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer

from hfrepro import runtime
from hfrepro.cards import hub_base_model, write_model_card
from hfrepro.chatgpt import align, harmlessness, refusal
from hfrepro.chatgpt.plots import rates_figure
from hfrepro.chatgpt.replies import reply_all, sample_all
from hfrepro.config import OutputArguments, RunArguments, parse_args, resolved
from hfrepro.data import check_eval_split
from hfrepro.errors import UserError, run_main
from hfrepro.finetune.sft import assistant_only
from hfrepro.fsutil import atomic_write_text
from hfrepro.hub import hub_request, push_folder
from hfrepro.lora import LoraArguments, lora_config


@dataclass
class ScriptArguments:
    model_name_or_path: str = field(default="smollm2-135m-instruct", metadata={
        "aliases": ["--model"], "help": "the chat model to align: embedded name, folder or Hub id"})
    dataset: str = field(default="harmlessness", metadata={
        "help": "harmlessness (shipped) or a JSONL file of {prompt, label: decline|answer, category}"})
    eval_per_label: int = field(default=64, metadata={"help": "held-out requests of each label"})
    train_decline: int = field(default=32, metadata={"help": "training requests to decline"})
    train_answer: int = field(default=64, metadata={"help": "benign training requests"})
    demo_tokens: int = field(default=32, metadata={"help": "tokens of the base model's replies to training prompts"})
    eval_tokens: int = field(default=16, metadata={"help": "tokens generated per held-out reply (the rule reads "
                                                           "the opening)"})
    eval_split: str = field(default="test", metadata={
        "help": "test: the held-out requests the claims use; validation: up to as many others (those after the "
                "training ones), to choose settings on"})
    batch_size: int = field(default=32, metadata={"help": "prompts per generation batch"})
    save_model: bool = field(default=True, metadata={"help": "save the aligned policy in the run folder"})
    # (1) SFT
    sft_steps: int = field(default=12)
    sft_batch_size: int = field(default=8)
    sft_learning_rate: float = field(default=3e-3)
    # (2) reward model
    rm_layers: int = field(default=8, metadata={"help": "blocks of the base model kept (0: all)"})
    rm_trainable_layers: int = field(default=2, metadata={"help": "top blocks trained (0: all)"})
    rm_init: str = field(default="base", metadata={
        "help": "the reward model's starting blocks: base (the shipped model) or sft (the SFT policy's, as in "
                "InstructGPT)"})
    rm_steps: int = field(default=16)
    rm_batch_size: int = field(default=8)
    rm_learning_rate: float = field(default=1e-3)
    rm_pairs: str = field(default="policy", metadata={
        "help": "written: a written refusal against the base model's reply; policy: the SFT policy's own samples "
                "(num_generations per training prompt, as GRPO samples them), each refusal against each answer "
                "where a prompt's samples hold both (InstructGPT's labellers compared the SFT model's samples), "
                "the written pair where they do not"})
    rm_balance: bool = field(default=True, metadata={
        "help": "repeat the scarcer label's pairs until both labels have as many (else preferring any answer to "
                "any refusal, the majority's shortcut, scores well without telling the requests apart)"})
    # (3) GRPO
    grpo_steps: int = field(default=8)
    grpo_prompts: int = field(default=4, metadata={"help": "prompts per GRPO step"})
    num_generations: int = field(default=4, metadata={"help": "sampled replies per prompt (the group)"})
    completion_tokens: int = field(default=16, metadata={"help": "tokens per sampled reply"})
    grpo_learning_rate: float = field(default=1e-3)
    grpo_balance: bool = field(default=False, metadata={
        "help": "repeat the scarcer label's training prompts in GRPO until both labels have as many (else about "
                "two of three sampled prompts are benign ones, where the reward is for answering)"})
    beta: float = field(default=0.0, metadata={"help": "KL penalty to the SFT policy (0: none, no reference pass)"})
    temperature: float = field(default=1.0)


def main(script_args: ScriptArguments, lora_args: LoraArguments, out_args: OutputArguments,
         run_args: RunArguments) -> dict:
    config = resolved(script_args, lora_args, out_args, run_args)
    push = hub_request(out_args, default_name="hfrepro-harmless")       # fails now, not after training
    a, seed = script_args, out_args.seed
    check_eval_split(a.eval_split)
    if a.rm_init not in ("base", "sft"):
        raise UserError(f"unknown --rm_init {a.rm_init!r}", fix="use base or sft")
    if a.rm_pairs not in ("written", "policy"):
        raise UserError(f"unknown --rm_pairs {a.rm_pairs!r}", fix="use written or policy")
    data = harmlessness.split(harmlessness.load(a.dataset), seed, a.eval_per_label, a.train_decline,
                              a.train_answer, validation=a.eval_split == "validation")  # checked before any model
    runtime.setup(seed=seed, threads=run_args.threads, precision=run_args.precision)
    with runtime.Run.begin(out_args.output_dir, config, overwrite=run_args.overwrite, wait=run_args.wait) as run:
        if run.finished:
            print(f"already trained with this config: {run.path}/metrics.json")
            return run.metrics()
        clock, train, held = Clock(), data["train"], data["eval"]
        tok = align.chat_tokenizer(a.model_name_or_path)
        base = align.load_policy(a.model_name_or_path, tok)

        # (0) The base model: its replies to the training prompts (demonstrations, pairs) and to held-out ones.
        base_train = clock("base replies", reply_all, base, tok, conv(train), a.demo_tokens, a.batch_size)
        replies = {"base": clock("base eval", reply_all, base, tok, conv(held), a.eval_tokens, a.batch_size)}

        # (1) SFT on refusal demonstrations and the base model's own benign answers (LoRA, merged after).
        demos = harmlessness.demonstrations(train, base_train)
        sft_model = clock("sft", supervised, base, tok, demos, a, lora_args, run.path, seed)
        replies["sft"] = clock("sft eval", reply_all, sft_model, tok, conv(held), a.eval_tokens, a.batch_size)

        # (2) The reward model from preference pairs; its held-out pairwise accuracy.
        pairs = harmlessness.preference_pairs(train, base_train, seed)
        if a.rm_pairs == "policy":      # the SFT policy's own replies, sampled as GRPO will sample them
            samples = clock("policy samples", sample_all, sft_model, tok, conv(train), a.num_generations,
                            a.completion_tokens, a.temperature, a.batch_size)
            pairs = harmlessness.policy_pairs(train, samples, pairs)
        if not pairs:
            raise UserError("no preference pair: the base model refused every training prompt",
                            fix="use more training prompts (--train_decline, --train_answer) or another model")
        rm = clock("reward model", reward, tok, harmlessness.balanced(pairs) if a.rm_balance else pairs, a,
                   run.path, seed, sft_model if a.rm_init == "sft" else None)
        test_pairs = harmlessness.preference_pairs(held, replies["base"], seed)
        rm_correct = clock("reward eval", align.pairwise_accuracy, rm, tok, test_pairs, a.batch_size)

        # (3) RLHF: GRPO from the SFT policy against the frozen reward model.
        policy, rewards = clock("grpo", grpo, sft_model, rm, tok, train, a, lora_args, run.path, seed)
        replies["rlhf"] = clock("rlhf eval", reply_all, policy, tok, conv(held), a.eval_tokens, a.batch_size)

        # Results: refusal and over-refusal of the three models, every reply, the figure, the card.
        metrics = summarize(held, replies, demos, pairs, test_pairs, rm_correct, rewards, clock.seconds)
        write_outputs(run.path, held, replies, metrics)
        if a.save_model:
            policy.save_pretrained(run.path, safe_serialization=True)
            tok.save_pretrained(run.path)
        metrics = run.finish(metrics)
        if run.is_main:
            write_card(run.path, a, metrics, config)
            print(table_line(metrics))
            if push:
                print(f"pushed to {push.repo_id}: {push_folder(run.path, push)}")
    return metrics


class Clock:
    """Runs a step and keeps its CPU seconds (this process, all threads), by name."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name, fn, *args):
        t0 = time.process_time()
        out = fn(*args)
        self.seconds[name] = round(time.process_time() - t0, 2)
        return out


def conv(rows) -> list[list[dict]]:
    return [harmlessness.conversation(r) for r in rows]


def trl_common(out_dir, seed: int) -> dict:
    """What every TRL config here shares: bf16 only where the machine has it, no activation checkpointing (a
    small model with LoRA only slows down), no checkpoints (the steps take seconds), logged every step."""
    return dict(output_dir=str(out_dir), seed=seed, bf16=runtime.precision()["bf16"], activation_checkpointing=False,
                save_strategy="no", report_to="none", logging_steps=1, disable_tqdm=True)


def supervised(base, tok, demos: list[dict], a: ScriptArguments, lora_args: LoraArguments, folder, seed: int):
    """TRL's SFTTrainer with LoRA, loss on the assistant turns; returns the merged model."""
    shipped = tok.chat_template     # assistant_only may mark the assistant turns in it for training
    train, _, kind, only = assistant_only(tok, Dataset.from_list(demos).shuffle(seed=seed), None, "messages", print)
    args = SFTConfig(max_steps=a.sft_steps, per_device_train_batch_size=a.sft_batch_size,
                     learning_rate=a.sft_learning_rate, lr_scheduler_type="constant", max_length=256,
                     assistant_only_loss=only, **trl_common(folder / "sft", seed))
    trainer = SFTTrainer(model=base, args=args, train_dataset=train, processing_class=tok,
                         peft_config=lora_config(base, lora_args))
    trainer.train()
    tok.chat_template = shipped
    return trainer.model.merge_and_unload().eval()


def reward(tok, pairs: list[dict], a: ScriptArguments, folder, seed: int, start=None):
    """TRL's RewardTrainer (Bradley-Terry) on the pairs; returns the frozen reward model (its blocks from `start`,
    the SFT policy, when given)."""
    model = align.reward_model(a.model_name_or_path, tok, a.rm_layers, a.rm_trainable_layers, start)
    args = RewardConfig(max_steps=a.rm_steps, per_device_train_batch_size=a.rm_batch_size,
                        learning_rate=a.rm_learning_rate, max_length=256, **trl_common(folder / "reward", seed))
    data = Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
    RewardTrainer(model=model, args=args, train_dataset=data, processing_class=tok).train()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def grpo(sft_model, rm, tok, train: list[dict], a: ScriptArguments, lora_args: LoraArguments, folder, seed: int):
    """TRL's GRPOTrainer: groups of sampled replies per prompt, advantages relative to the group's mean reward;
    returns the merged policy and the mean reward of each step."""
    args = GRPOConfig(max_steps=a.grpo_steps, per_device_train_batch_size=a.grpo_prompts * a.num_generations,
                      num_generations=a.num_generations, max_completion_length=a.completion_tokens,
                      learning_rate=a.grpo_learning_rate, beta=a.beta, temperature=a.temperature,
                      **trl_common(folder / "grpo", seed))
    rows = harmlessness.balanced(train) if a.grpo_balance else train
    prompts = Dataset.from_list([{"prompt": harmlessness.conversation(r)} for r in rows]).shuffle(seed=seed)
    trainer = GRPOTrainer(model=sft_model, reward_funcs=[rm], args=args, train_dataset=prompts,
                          processing_class=tok, reward_processing_classes=[tok],
                          peft_config=lora_config(sft_model, lora_args))
    trainer.train()
    rewards = [round(float(h["reward"]), 4) for h in trainer.state.log_history if "reward" in h]
    return trainer.model.merge_and_unload().eval(), rewards


def by_label(pairs: list[dict], correct: list[int]) -> dict[str, float]:
    """The reward model's held-out pairwise accuracy on each label's pairs (decline: the refusal chosen)."""
    out = {label: [c for p, c in zip(pairs, correct) if p["label"] == label] for label in harmlessness.LABELS}
    return {label: sum(v) / len(v) for label, v in out.items() if v}


def summarize(held, replies: dict, demos, pairs, test_pairs, rm_correct, rewards, seconds) -> dict:
    m: dict = {"eval_decline": sum(r["label"] == "decline" for r in held),
               "eval_answer": sum(r["label"] == "answer" for r in held)}
    for name, outs in replies.items():
        flags = harmlessness.rates(held, outs)
        m[f"{name}_refusal"] = sum(flags["decline"]) / max(1, len(flags["decline"]))
        m[f"{name}_over_refusal"] = sum(flags["answer"]) / max(1, len(flags["answer"]))
    agree = refusal.agreement()
    m.update({"sft_demos": len(demos), "sft_refusal_demos": sum("can't help" in d["messages"][-1]["content"]
                                                                for d in demos),
              "rm_pairs": len(pairs), "rm_policy_pairs": sum(p.get("from") == "policy" for p in pairs),
              "rm_heldout_pairs": len(rm_correct),
              "rm_heldout_accuracy": sum(rm_correct) / max(1, len(rm_correct)), "rm_heldout_correct": rm_correct,
              "rm_heldout_accuracy_by_label": by_label(test_pairs, rm_correct),
              "grpo_rewards": rewards, "rule_agreement": agree["accuracy"], "rule_precision": agree["precision"],
              "rule_recall": agree["recall"], "rule_labels": agree["n"], "cpu_seconds": seconds,
              "cpu_seconds_total": round(sum(seconds.values()), 1)})
    return m


def write_outputs(folder, held, replies: dict, metrics: dict) -> None:
    import json

    rows = []
    for i, r in enumerate(held):
        row = {k: r[k] for k in ("id", "label", "category", "prompt")}
        for name, outs in replies.items():
            row[name] = outs[i]
            row[f"{name}_refused"] = refusal.is_refusal(outs[i])
        rows.append(row)
    atomic_write_text(folder / "eval.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    rates_figure(rows, list(replies), folder / "refusal.png")


def table_line(m: dict) -> str:
    return "  ".join(f"{n}: refusal {m[f'{n}_refusal']:.2f}, over-refusal {m[f'{n}_over_refusal']:.2f} |"
                     for n in ("base", "sft", "rlhf")) + f" reward model {m['rm_heldout_accuracy']:.2f}"


def write_card(folder, a: ScriptArguments, metrics: dict, config: dict) -> None:
    keys = ("base_refusal", "base_over_refusal", "sft_refusal", "sft_over_refusal", "rlhf_refusal",
            "rlhf_over_refusal", "rm_heldout_accuracy", "eval_decline", "eval_answer")
    write_model_card(
        folder, title=f"{a.model_name_or_path} aligned to decline harmful requests (hfrepro)", license="apache-2.0",
        base_model=hub_base_model(a.model_name_or_path), datasets=["harmlessness"], language=["en"],
        pipeline_tag="text-generation", tags=["sft", "reward-model", "grpo", "rlhf", "trl", "lora", "safety"],
        description=("SFT on refusal demonstrations and the base model's own benign answers (LoRA), a reward "
                     "model from preference pairs and GRPO (TRL), by hfrepro's `recipes/harmless.py`; LoRA "
                     "adapters merged into the weights."),
        metrics={k: metrics[k] for k in keys}, eval_metrics=["rlhf_refusal", "rlhf_over_refusal"],
        eval_split="eval", config=config,
        command="hfrepro harmless --config config.yaml   # config.yaml: this run's config",
        usage="Teaching: what alignment training does to refusals and over-refusals, measured.",
        limits="A 135M model trained for minutes: it refuses by rote and still answers some harmful requests; "
               "never a safety filter. Refusals are detected by a word rule on the reply's opening.")


def cli(argv=None) -> dict:
    return main(*parse_args((ScriptArguments, LoraArguments, OutputArguments, RunArguments), recipe="harmless",
                            argv=argv))


if __name__ == "__main__":
    run_main(cli)
