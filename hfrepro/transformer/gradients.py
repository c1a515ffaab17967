"""Why RNNs gave way: the gradient of a late loss with respect to an early input vanishes in a plain RNN.

Backpropagation through time multiplies one Jacobian per step: for a tanh RNN, d h_t / d h_(t-1) =
diag(tanh'(.)) W, with tanh' <= 1 (sigmoid' <= 1/4), so the product shrinks geometrically when W is not large.
An LSTM carries its cell state forward through the forget gate only (c_t = f_t * c_(t-1) + ...), so where the
gates stay open the gradient survives many steps (Hochreiter & Schmidhuber 1997; Bengio et al. 1994; Pascanu et
al. 2013).

    norms = input_gradient_norms(model, sequences, distance=32)   # (sequences, distance + 1)
    decay = log10(norms[:, k] / norms[:, 0])                      # orders of magnitude lost over k steps

The loss is the next-token cross-entropy at the last position of each sequence; `norms[:, k]` is the norm of
its gradient with respect to the input embedding k positions earlier (k = 0: the last token itself). The
models are the same LM (`hfrepro.lm.lstm.LSTMLM`) with a different recurrent cell, trained on the same text for
the same steps. Computed in float64, so that tiny gradients are not rounded to 0.
"""

from __future__ import annotations

from typing import Sequence

from hfrepro.report import pyplot, save_figure
from hfrepro.transformer.attention import drawable


def input_gradient_norms(model, sequences: Sequence[Sequence[int]], distance: int):
    """(n, distance + 1) numpy array: ||d loss_last / d x_(T-k)|| for k = 0..distance, per sequence."""
    import numpy as np
    import torch

    m = model.double().eval()
    out = []
    for ids in sequences:
        x = torch.tensor([list(ids)])
        if x.shape[1] < distance + 2:
            raise ValueError(f"a sequence needs at least {distance + 2} tokens, got {x.shape[1]}")
        emb = m.embed(x[:, :-1]).detach().requires_grad_(True)          # the inputs, the last target left out
        logits = m(inputs_embeds=emb).logits[0, -1]
        loss = torch.nn.functional.cross_entropy(logits[None], x[0, -1:])
        (g,) = torch.autograd.grad(loss, emb)
        norms = g[0].norm(dim=-1).flip(0)[: distance + 1]                  # k = 0 is the last input
        out.append(norms.numpy())
    model.float()
    return np.array(out)


def log_decay(norms):
    """log10(norm at distance k / norm at distance 0), per sequence (rows) and distance (columns)."""
    import numpy as np

    return np.log10(np.maximum(norms, 1e-300) / norms[:, :1])


def lstm_gates(model, ids: Sequence[int]) -> dict:
    """The first LSTM layer's gates over a token sequence: {"input", "forget", "output"}: (steps, units)."""
    import torch

    lstm = model.lstm
    w_ih, w_hh = lstm.weight_ih_l0.detach().float(), lstm.weight_hh_l0.detach().float()
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().float()
    x = model.embed(torch.tensor(list(ids))).detach().float()
    h = torch.zeros(lstm.hidden_size)
    c = torch.zeros(lstm.hidden_size)
    gates = {"input": [], "forget": [], "output": []}
    for t in range(len(ids)):
        i, f, g, o = (w_ih @ x[t] + w_hh @ h + b).chunk(4)                 # torch's order: i, f, g, o
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        c = f * c + i * torch.tanh(g)
        h = o * torch.tanh(c)
        for k, v in (("input", i), ("forget", f), ("output", o)):
            gates[k].append(v.tolist())
    return gates


def plot_decay(decays: dict, path, distance: int) -> None:
    """Mean log10 gradient ratio against distance, one line per cell, with a 95% band over sequences."""
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ks = np.arange(distance + 1)
    for name, d in decays.items():
        m, s = d.mean(0), d.std(0) / np.sqrt(len(d))
        line, = ax.plot(ks, m, label=name)
        ax.fill_between(ks, m - 1.96 * s, m + 1.96 * s, alpha=0.2, color=line.get_color())
    ax.set(xlabel="distance k (tokens back from the predicted position)",
           ylabel="log10 ‖∂loss/∂x(T−k)‖ / ‖∂loss/∂x(T)‖", title="How far back the gradient reaches")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_derivatives(path) -> None:
    """tanh, sigmoid and ReLU and their derivatives: tanh' <= 1, sigmoid' <= 1/4, ReLU' is 0 or 1."""
    import numpy as np

    plt = pyplot()
    z = np.linspace(-5, 5, 401)
    sig = 1 / (1 + np.exp(-z))
    curves = {"tanh": (np.tanh(z), 1 - np.tanh(z) ** 2), "sigmoid": (sig, sig * (1 - sig)),
              "ReLU": (np.maximum(z, 0), (z > 0).astype(float))}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, (name, (f, df)) in zip(axes, curves.items()):
        ax.plot(z, f, label=name)
        ax.plot(z, df, label=f"{name}'", linestyle="--")
        ax.set(title=f"{name}: max slope {df.max():.2f}", xlabel="z")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_gates(gates: dict, tokens: list[str], path) -> None:
    """Heat maps (units x steps) of the LSTM's input, forget and output gates over a sentence."""
    import numpy as np

    plt = pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(min(14, 2 + 0.35 * len(tokens)), 8), sharex=True)
    for ax, (name, g) in zip(axes, gates.items()):
        im = ax.imshow(np.asarray(g).T[:48], aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set(ylabel=f"{name} gate\nunits 1-48")
        fig.colorbar(im, ax=ax, fraction=0.02)
    axes[-1].set_xticks(range(len(tokens)), drawable(tokens), rotation=90, fontsize=7)
    fig.suptitle("LSTM gates over a sentence (0 = closed, 1 = open)")
    save_figure(fig, path)
