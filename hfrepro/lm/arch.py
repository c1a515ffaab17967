"""Parameter counts of GPT-1, GPT-2, the GPT-3 family and BERT, computed from their published shapes.

Each model is built from its config on torch's `meta` device (shapes only, no memory, about a second for
175B), and its parameters are counted (tied input/output embeddings once). Next to it: the number the
authors published and the difference. Most of a GPT's weight is 12 * n_layers * d_model^2 (attention 4 d^2,
MLP 8 d^2 per block); the embeddings add (vocab + context) * d_model.

Sources of the published numbers:
  GPT-1  Radford et al. 2018 (12 layers, 768 wide, 12 heads, 512 tokens, 40,478 BPE tokens); "117M" as
         the GPT-2 paper lists for this size.
  GPT-2  the released checkpoints' names in github.com/openai/gpt-2 (124M, 355M, 774M, 1558M); the paper's
         Table 2 says 117M, 345M, 762M, 1542M (shown in the last column; OpenAI later corrected them).
  GPT-3  Brown et al. 2020, Table 2.1 (n_params, n_layers, d_model, n_heads, d_head; context 2048,
         GPT-2's 50,257-token vocabulary). The 13B row's d_model is printed as 5140, which 40 heads cannot
         split; we build 40 x 128 = 5120 (the table's own n_heads x d_head).
  BERT   Devlin et al. 2019: BERT-base 110M, BERT-large 340M (encoder with pooler, 30,522 WordPiece tokens,
         512 positions, 2 segment types).
"""

from __future__ import annotations

from dataclasses import dataclass

from hfrepro.report import md_table

TOLERANCE = 0.03  # |computed - published| / published; published numbers are rounded to 2-3 digits


@dataclass(frozen=True)
class Arch:
    name: str
    family: str          # gpt1 | gpt2 | bert
    n_layers: int
    d_model: int
    n_heads: int
    context: int
    vocab: int
    published: float     # parameters
    paper_note: str = ""
    d_head_published: int | None = None
    heads_built: int | None = None   # where the published heads x d_head does not divide d_model

    @property
    def d_head(self) -> int:
        return self.d_head_published or self.d_model // self.n_heads


GPT3_VOCAB, GPT3_CTX = 50257, 2048
ARCHS = [
    Arch("GPT-1", "gpt1", 12, 768, 12, 512, 40478, 117e6),
    Arch("GPT-2 small", "gpt2", 12, 768, 12, 1024, 50257, 124e6, "paper: 117M"),
    Arch("GPT-2 medium", "gpt2", 24, 1024, 16, 1024, 50257, 355e6, "paper: 345M"),
    Arch("GPT-2 large", "gpt2", 36, 1280, 20, 1024, 50257, 774e6, "paper: 762M"),
    Arch("GPT-2 XL", "gpt2", 48, 1600, 25, 1024, 50257, 1558e6, "paper: 1542M; '1.5B'"),
    Arch("GPT-3 Small", "gpt2", 12, 768, 12, GPT3_CTX, GPT3_VOCAB, 125e6),
    Arch("GPT-3 Medium", "gpt2", 24, 1024, 16, GPT3_CTX, GPT3_VOCAB, 350e6),
    Arch("GPT-3 Large", "gpt2", 24, 1536, 16, GPT3_CTX, GPT3_VOCAB, 760e6),
    Arch("GPT-3 XL", "gpt2", 24, 2048, 24, GPT3_CTX, GPT3_VOCAB, 1.3e9,
         "table: 24 heads x 128 = 3072 != d_model; built 16 x 128 (heads do not change the count)",
         d_head_published=128, heads_built=16),
    Arch("GPT-3 2.7B", "gpt2", 32, 2560, 32, GPT3_CTX, GPT3_VOCAB, 2.7e9, d_head_published=80),
    Arch("GPT-3 6.7B", "gpt2", 32, 4096, 32, GPT3_CTX, GPT3_VOCAB, 6.7e9),
    Arch("GPT-3 13B", "gpt2", 40, 5120, 40, GPT3_CTX, GPT3_VOCAB, 13.0e9,
         "table prints d_model 5140, which 40 heads cannot split; built 40 x 128 = 5120"),
    Arch("GPT-3 175B", "gpt2", 96, 12288, 96, GPT3_CTX, GPT3_VOCAB, 175.0e9),
    Arch("BERT-base", "bert", 12, 768, 12, 512, 30522, 110e6),
    Arch("BERT-large", "bert", 24, 1024, 16, 512, 30522, 340e6),
]


def build_on_meta(a: Arch):
    import torch
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, OpenAIGPTConfig, OpenAIGPTLMHeadModel

    with torch.device("meta"):
        if a.family == "gpt1":
            return OpenAIGPTLMHeadModel(OpenAIGPTConfig(vocab_size=a.vocab, n_positions=a.context, n_embd=a.d_model,
                                                        n_layer=a.n_layers, n_head=a.n_heads))
        if a.family == "gpt2":
            return GPT2LMHeadModel(GPT2Config(vocab_size=a.vocab, n_positions=a.context, n_embd=a.d_model,
                                              n_layer=a.n_layers, n_head=a.heads_built or a.n_heads))
        return BertModel(BertConfig(vocab_size=a.vocab, hidden_size=a.d_model, num_hidden_layers=a.n_layers,
                                    num_attention_heads=a.n_heads, intermediate_size=4 * a.d_model,
                                    max_position_embeddings=a.context))


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors are yielded once


def human(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def table(archs=ARCHS) -> list[dict]:
    rows = []
    for a in archs:
        n = count_parameters(build_on_meta(a))
        diff = (n - a.published) / a.published
        rows.append({"model": a.name, "layers": a.n_layers, "d_model": a.d_model, "heads": a.n_heads,
                     "d_head": a.d_head, "context": a.context, "vocab": a.vocab, "parameters": n,
                     "computed": human(n), "published": human(a.published), "diff %": round(100 * diff, 2),
                     "12·L·d² share %": round(100 * 12 * a.n_layers * a.d_model ** 2 / n, 1),
                     "within tolerance": abs(diff) <= TOLERANCE, "note": a.paper_note})
    return rows


def markdown(rows: list[dict]) -> str:
    cols = ["model", "layers", "d_model", "heads", "d_head", "context", "vocab", "computed", "published",
            "diff %", "12·L·d² share %", "note"]
    return md_table(rows, columns=cols, digits=2)
