"""An LSTM language model in plain torch, trained by a small hand-written loop under `accelerate`.

There is no Trainer for a model that is not a transformers model, so the loop is written out (it is
short): AdamW, linear warmup then cosine decay, gradient clipping, a NaN guard, a JSONL log, a validation
loss every `eval_steps`, and a checkpoint every `save_steps` (hfrepro.training.save_loop_checkpoint:
safetensors weights, optimizer and RNG state). Data order comes from accelerate's seedable sampler, so a
run killed and started again continues with the very batches it would have seen: the resumed run ends
with the same weights as one that was never interrupted (tested).

The model: embedding -> LSTM layers -> dropout -> the embedding matrix again as the output layer
(tied weights, Press & Wolf 2017). Its forward returns `.loss` and `.logits` like a transformers model,
so the perplexity metric scores it the same way as the GPT.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from hfrepro.errors import UserError
from hfrepro.lm.data import LMDataArguments


@dataclass
class LSTMConfig:
    vocab_size: int
    d_model: int = 256
    n_layers: int = 1
    dropout: float = 0.1
    max_length: int = 128          # the training block size; the default scoring window
    model_type: str = "hfrepro-lstm"


@dataclass
class LMOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


class LSTMLM(nn.Module):
    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.lstm = nn.LSTM(config.d_model, config.d_model, config.n_layers, batch_first=True,
                            dropout=config.dropout if config.n_layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.out_bias = nn.Parameter(torch.zeros(config.vocab_size))
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, input_ids, attention_mask=None, labels=None, **_):
        # attention_mask is accepted for the metric's right-padded batches; an LSTM reads left to right,
        # so padding after the real tokens cannot change their predictions.
        h, _ = self.lstm(self.drop(self.embed(input_ids)))
        logits = nn.functional.linear(self.drop(h), self.embed.weight, self.out_bias)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                               labels[:, 1:].reshape(-1), ignore_index=-100)
        return LMOutput(logits=logits, loss=loss)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        from hfrepro.fsutil import atomic_write_json
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()},
                  str(folder / "model.safetensors"))
        atomic_write_json(folder / "config.json", asdict(self.config))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "LSTMLM":
        from safetensors.torch import load_file

        from hfrepro.fsutil import read_json
        folder = Path(folder)
        cfg = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
        if cfg.get("model_type") != "hfrepro-lstm":
            raise UserError(f"no hfrepro LSTM model in {folder}", fix="point at the model/ folder of an lstm run")
        model = cls(LSTMConfig(**cfg))
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        return model.eval()


@dataclass
class LSTMArguments(LMDataArguments):
    output_dir: str = field(default="runs/lstm", metadata={"help": "run folder"})
    d_model: int = field(default=256, metadata={"help": "embedding and hidden size"})
    n_layers: int = field(default=1, metadata={"help": "LSTM layers"})
    dropout: float = field(default=0.1)
    max_steps: int = field(default=600, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=16, metadata={"help": "blocks per step and process"})
    learning_rate: float = field(default=3e-3)
    weight_decay: float = field(default=0.01)
    warmup_steps: int = field(default=30)
    max_grad_norm: float = field(default=1.0)
    logging_steps: int = field(default=10)
    eval_steps: int = field(default=100, metadata={"help": "validation loss every N steps"})
    save_steps: int = field(default=100, metadata={"help": "checkpoint every N steps"})
    seed: int = field(default=0)
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: cores / processes)"})
    overwrite: bool = field(default=False, metadata={"help": "start afresh if output_dir holds another run"})
    stop_after_steps: int = field(default=0, metadata={"help": "testing aid: stop (as if killed) after this "
                                                                "many steps of this invocation"})


def lr_at(step: int, args: LSTMArguments) -> float:
    if step < args.warmup_steps:
        return args.learning_rate * (step + 1) / args.warmup_steps
    progress = (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps)
    return args.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train_loop(args: LSTMArguments, model: LSTMLM, train_blocks: list[list[int]], val_blocks: list[list[int]],
               run, progress: bool = True) -> dict:
    """Train `model` on `train_blocks`; checkpoints and log go to `run` (a RunDir). Resumes if it can."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration
    from torch.utils.data import DataLoader, TensorDataset

    from hfrepro.training import check_finite, load_loop_checkpoint, save_loop_checkpoint

    acc = Accelerator(cpu=not torch.cuda.is_available(),
                      dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    data = TensorDataset(torch.tensor(train_blocks, dtype=torch.long))
    # The loader gets its own generator: starting an iterator would otherwise draw from torch's global RNG,
    # and a resumed run's dropout masks would no longer be the ones the uninterrupted run drew.
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(args.seed))
    opt = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay,
                            betas=(0.9, 0.98))
    model, opt, loader = acc.prepare(model, opt, loader)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise UserError(f"{len(train_blocks)} training blocks are fewer than one batch of {args.batch_size} "
                        f"per process", fix="use more training text, or a smaller --batch_size")
    state = load_loop_checkpoint(run.checkpoints, acc.unwrap_model(model), opt) or {"step": 0}
    step = start = int(state["step"])
    if step and acc.is_main_process:
        print(f"[lstm] resuming from step {step} ({run.checkpoints})", flush=True)

    val = torch.tensor(val_blocks, dtype=torch.long)
    tokens_per_step = args.batch_size * acc.num_processes * len(train_blocks[0])
    bar = None
    if progress and acc.is_main_process:
        from tqdm.auto import tqdm
        bar = tqdm(total=args.max_steps, initial=step, desc="lstm", unit="step")
    t0, loss_sum, loss_n = time.time(), 0.0, 0
    model.train()
    while step < args.max_steps:
        epoch, within = divmod(step, steps_per_epoch)
        loader.set_epoch(epoch)
        batches = acc.skip_first_batches(loader, within) if within else loader
        for (x,) in batches:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, args)
            loss = model(input_ids=x, labels=x).loss
            acc.backward(loss)
            acc.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            loss_v = float(loss.detach())
            check_finite(loss_v, step, str(run.path))
            loss_sum, loss_n = loss_sum + loss_v, loss_n + 1
            if bar:
                bar.update(1)
            last = step == args.max_steps
            do_eval = step % args.eval_steps == 0 or last
            if step % args.logging_steps == 0 or do_eval:
                rec = {"step": step, "max_steps": args.max_steps, "loss": loss_sum / loss_n,
                       "learning_rate": lr_at(step - 1, args), "tokens_seen": step * tokens_per_step}
                if do_eval:
                    rec["eval_loss"] = _val_loss(acc.unwrap_model(model), val, args.batch_size, acc.device)
                if acc.is_main_process:
                    run.log(rec)
                loss_sum, loss_n = 0.0, 0
            if step % args.save_steps == 0 and step < args.max_steps:
                acc.wait_for_everyone()
                if acc.is_main_process:
                    save_loop_checkpoint(run.checkpoints, acc.unwrap_model(model), opt, step)
            if args.stop_after_steps and step - start >= args.stop_after_steps and step < args.max_steps:
                if bar:
                    bar.close()
                return {"stopped_at": step}
            if step >= args.max_steps:
                break
    if bar:
        bar.close()
    acc.wait_for_everyone()
    return {"steps": step, "train_seconds": round(time.time() - t0, 2), "tokens_seen": step * tokens_per_step,
            "world_size": acc.num_processes, "is_main": acc.is_main_process,
            "model": acc.unwrap_model(model)}


@torch.no_grad()
def _val_loss(model: LSTMLM, val: torch.Tensor, batch_size: int, device) -> float:
    if len(val) == 0:
        return float("nan")
    was = model.training
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(val), batch_size):
        x = val[i:i + batch_size].to(device)
        tot += float(model(input_ids=x, labels=x).loss) * len(x)
        n += len(x)
    model.train(was)
    return tot / n


def train(args: LSTMArguments, config: dict, score: bool = True, progress: bool = True) -> dict | None:
    """The whole run: data, tokenizer, model, loop (resuming), `model/` folder, held-out bits per character.
    Returns the metrics on the main process (None elsewhere, or when stopped early by stop_after_steps)."""
    from hfrepro.lm.data import blocks, process_state, run_tokenizer, token_stream
    from hfrepro.lm.text import load_corpus
    from hfrepro.training import RunDir, setup_runtime

    threads = setup_runtime(seed=args.seed, threads=args.threads or None)
    state = process_state()
    run = RunDir(args.output_dir)
    config = {k: v for k, v in config.items() if k != "stop_after_steps"}  # how far one call goes, not the run
    if state.is_main_process:
        run.start(config, overwrite=args.overwrite)
    state.wait_for_everyone()
    corpus = load_corpus(args.dataset, args.text_column)
    train_docs = corpus.documents("train", args.train_max_chars, seed=args.seed)
    tok = run_tokenizer(run, args, train_docs, state)
    train_blocks = blocks(token_stream(tok, train_docs), args.block_size)
    val_docs = corpus.documents("validation", args.val_max_chars, seed=args.seed)
    val_blocks = blocks(token_stream(tok, val_docs), args.block_size)
    torch.manual_seed(args.seed)
    model = LSTMLM(LSTMConfig(vocab_size=len(tok), d_model=args.d_model, n_layers=args.n_layers,
                              dropout=args.dropout, max_length=args.block_size))
    out = train_loop(args, model, train_blocks, val_blocks, run, progress=progress)
    if "stopped_at" in out or not out["is_main"]:
        return None
    model = out.pop("model").eval()
    out.pop("is_main")
    metrics = {"model": "lstm", "parameters": model.num_parameters(), "threads_per_process": threads,
               "train_blocks": len(train_blocks), "vocab_size": len(tok), **out,
               "eval_loss": _val_loss(model, torch.tensor(val_blocks), args.batch_size, next(model.parameters()).device)}
    if score:
        from hfrepro.lm.scoring import neural_bits
        docs = corpus.documents("test", args.eval_max_chars, seed=args.seed)
        metrics.update({f"test_{k}": v for k, v in neural_bits(model, tok, docs, args.block_size).items()})
    save_model(run.model_dir, model, tok, metrics, config, corpus.name)
    metrics["model_dir"] = str(run.model_dir)
    return run.write_metrics(metrics)


def save_model(model_dir, model: LSTMLM, tok, metrics: dict, config: dict, dataset: str) -> None:
    from hfrepro.fsutil import atomic_dir
    from hfrepro.cards import write_model_card

    with atomic_dir(model_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(str(tmp))
        write_model_card(
            tmp, title=f"LSTM language model on {dataset} (hfrepro stage 2)", license="apache-2.0",
            datasets=[dataset], language=["en"], library_name="pytorch", tags=["lstm", "language-model"],
            metrics={k: metrics[k] for k in ("parameters", "steps", "tokens_seen", "eval_loss",
                                             "test_bits_per_character", "test_perplexity") if k in metrics},
            config=config, eval_dataset=dataset,
            eval_metrics=[k for k in ("test_bits_per_character", "test_perplexity") if k in metrics],
            eval_split="test", command="hfrepro lstm --config run/config.yaml",
            how_to_load=("from huggingface_hub import snapshot_download\nfrom transformers import AutoTokenizer\n"
                         "from hfrepro.lm.lstm import LSTMLM\n\nfolder = snapshot_download(\"path/to/this/folder\")\n"
                         "model = LSTMLM.from_pretrained(folder)   # plain torch: safetensors + config.json\n"
                         "tokenizer = AutoTokenizer.from_pretrained(folder)"),
            description=(f"A {model.num_parameters():,}-parameter LSTM LM ({model.config.n_layers} layer(s), "
                         f"{model.config.d_model} wide, tied embeddings) in plain torch, trained by "
                         f"`recipes/lstm.py` for {metrics['steps']} steps. Not a transformers model: load it "
                         "with `hfrepro.lm.lstm.LSTMLM.from_pretrained(folder)` and the tokenizer with "
                         "`AutoTokenizer.from_pretrained(folder)`."),
            usage="Teaching and experiments: compare with the n-gram and GPT models of the same run.",
            limits="Tiny, trained for minutes on one corpus of Early Modern English plays.")
