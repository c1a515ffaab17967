"""A decoder run in two parts: its frozen lower blocks once, its trained upper blocks as often as needed.

RLHF trains small parts of big models: a LoRA adapter in the policy's top blocks, the top blocks of a critic
copied from the reward model. Whatever lies below the lowest trained block never changes during RL, so its
output (the hidden states entering that block) is computed once per batch of rollouts and reused: by the
reference policy (the adapter switched off), by every PPO epoch, by the reward model and the critic. Only the
upper blocks run again - the reason hfrepro's PPO update costs a fraction of a full forward/backward pass. Where
two models share their lowest blocks (the reward model and the policy both grown from the SFT model:
`shared_lower_blocks`), one pass of those serves both.

    lower, upper = decoder_views(causal_lm, 18)           # blocks [0, 18) and [18, 30) + final norm
    h = lower(input_ids=..., attention_mask=..., position_ids=...).last_hidden_state   # once, no grad
    logits = causal_lm.lm_head(upper(inputs_embeds=h, ...).last_hidden_state)         # = the full model's

The views share the model's modules (and so its LoRA layers and `disable_adapter()`); `check_split` verifies on
the model itself that lower + upper equal the whole (architectures that rescale `inputs_embeds`, such as
Gemma's, would not: they run unsplit).
"""

from __future__ import annotations

import copy

import torch


def backbone_of(model):
    """The decoder stack of a causal LM or sequence classifier (LlamaModel inside LlamaForCausalLM, ...),
    through a peft wrapper."""
    base = model
    if hasattr(base, "get_base_model"):
        base = base.get_base_model()
    return getattr(base, base.base_model_prefix), base


def first_trained_block(model) -> int:
    """Index of the lowest decoder block with a trainable parameter (the number of frozen blocks below it);
    0 when the embeddings train or nothing is found."""
    backbone, _ = backbone_of(model)
    if any(p.requires_grad for p in backbone.get_input_embeddings().parameters()):
        return 0
    for i, block in enumerate(backbone.layers):
        if any(p.requires_grad for p in block.parameters()):
            return i
    return 0


def _view(backbone, start: int, stop: int, first: bool, last: bool):
    """A shallow copy of `backbone` running blocks [start, stop): the same module objects, its own list."""
    view = copy.copy(backbone)
    view._modules = dict(backbone._modules)
    view.layers = torch.nn.ModuleList(list(backbone.layers)[start:stop])
    if not first:
        view.embed_tokens = torch.nn.Identity()  # it reads hidden states, not token ids
    if not last:
        view.norm = torch.nn.Identity()  # hidden states leave it raw, as the next block takes them
    view.config = copy.copy(backbone.config)
    view.config.num_hidden_layers = stop - start
    if getattr(view.config, "layer_types", None):
        view.config.layer_types = list(backbone.config.layer_types)[start:stop]
    return view


def decoder_views(model, *splits: int):
    """Views of `model`'s decoder cut at `splits`: (lower, upper) for one split, blocks [0, split) from token ids
    and [split, end) + the final norm from hidden states; one view more for each further split."""
    backbone, _ = backbone_of(model)
    bounds = [0, *splits, len(backbone.layers)]
    return tuple(_view(backbone, a, b, a == 0, b == bounds[-1]) for a, b in zip(bounds, bounds[1:]))


def upper_view(model, start: int):
    """`model`'s decoder from block `start` (reading hidden states) to the end, final norm included."""
    return decoder_views(model, start)[1]


def _same_parameters(a, b) -> bool:
    pa, pb = list(a.parameters()), list(b.parameters())
    return len(pa) == len(pb) and all(x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y.to(x.device))
                                      for x, y in zip(pa, pb))


@torch.no_grad()
def shared_lower_blocks(model, other, limit: int) -> int:
    """How many of the lowest blocks (at most `limit`) two decoders share: the same embeddings and the same
    weights in each block, and the same hidden states after them on a small batch. In hfrepro's RLHF the reward
    model is the SFT model's lower blocks with its top ones trained, and the policy is the SFT model with an
    adapter higher up: below both, one pass serves both (PPOTrainer.measure). 0 when nothing is shared."""
    (mine, _), (theirs, _) = backbone_of(model), backbone_of(other)
    if not _same_parameters(mine.get_input_embeddings(), theirs.get_input_embeddings()):
        return 0
    k = 0
    most = min(limit, len(mine.layers), len(theirs.layers) - 1)  # the other keeps at least one block of its own
    while k < most and _same_parameters(mine.layers[k], theirs.layers[k]):
        k += 1
    if k == 0:
        return 0
    inputs = _probe_batch(mine.get_input_embeddings().weight.shape[0], torch.device("cpu"))
    keep = inputs["attention_mask"].bool()

    def lowest(m):  # blocks [0, k) of m on its own device, the result on the CPU
        device = next(m.parameters()).device
        out = decoder_views(m, k)[0](**{n: t.to(device) for n, t in inputs.items()}, use_cache=False)
        return out.last_hidden_state.cpu()[keep]
    return k if torch.equal(lowest(model), lowest(other)) else 0


def _probe_batch(vocab: int, device) -> dict:
    """A small left-padded batch to compare two ways of running a decoder on: 2 rows of 7 random tokens (seed 0),
    the first row's first two padded; its attention mask and positions."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (2, 7), generator=g).to(device)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    return {"input_ids": ids, "attention_mask": mask, "position_ids": (mask.cumsum(1) - mask).clamp(min=0)}


def critic_from(reward_model, trainable_layers: int):
    """The critic V(s_t): a trainable copy of the reward model's top `trainable_layers` blocks (0: all), final
    norm and score head; it reads the hidden states entering those blocks (`critic.input_layer`)."""
    backbone, _ = backbone_of(reward_model)
    n = len(backbone.layers)
    k = min(trainable_layers or n, n)
    critic = copy.deepcopy(reward_model)
    upper = _view(getattr(critic, critic.base_model_prefix), n - k, n, False, True)
    setattr(critic, critic.base_model_prefix, upper)
    critic.config = upper.config
    for p in critic.parameters():
        p.requires_grad_(True)
    critic.input_layer = n - k
    return critic


def critic_values(critic, hidden, attention_mask, position_ids, n_response: int) -> torch.Tensor:
    """V(s_t) at the states before each of the last `n_response` tokens (positions -(n+1) .. -2)."""
    backbone = getattr(critic, critic.base_model_prefix)
    out = backbone(inputs_embeds=hidden, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    return critic.score(out.last_hidden_state[:, -(n_response + 1):-1]).squeeze(-1).float()


@torch.no_grad()
def check_split(model, split: int, head=None, atol: float = 1e-4) -> bool:
    """Whether lower + upper reproduce `model`'s last hidden states (through `head`, e.g. lm_head) on a
    small left-padded batch."""
    backbone, _ = backbone_of(model)
    inputs = _probe_batch(backbone.get_input_embeddings().weight.shape[0], next(model.parameters()).device)
    mask, pos = inputs["attention_mask"], inputs["position_ids"]
    whole = backbone(**inputs, use_cache=False).last_hidden_state
    lower, upper = decoder_views(model, split)
    h = lower(**inputs, use_cache=False).last_hidden_state
    parts = upper(inputs_embeds=h, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
    head = head or (lambda x: x)
    keep = mask.bool()
    return bool(torch.allclose(head(whole)[keep], head(parts)[keep], atol=atol))
