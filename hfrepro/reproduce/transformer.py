"""Chapter stage of `hfrepro reproduce`: inside the Transformer, and why RNNs gave way.

Runs (budgets: recipes/configs/lstm/gradients/ and recipes/configs/gpt1/):
    gpt1                    the lm stage's GPT (`{root}/lm/clm`) fine-tuned to tell a speech as written from the
                            same words shuffled, against the same network from scratch, the same steps (GPT-1's
                            semi-supervised recipe)
    lstm, gru, rnn_tanh,    one small recurrent LM per cell, the same text, tokenizer, steps and seed
    rnn_relu
Then the section draws attention maps (our GPT; BERT: MiniLM as shipped and the bert stage's model when there;
the seq2seq stage's Transformer translator when there), positional encodings, the masked next-word demo on
"오늘 나는 치킨을 먹었다", the tokenizers' pieces and costs, the gradient decay of each cell and the LSTM's gates.
Its own settings: recipes/configs/reproduce/transformer/<budget>.yaml.

Claims:
    gpt1-pretraining-helps  test accuracy of the pretrained arm - the scratch arm > 0 (paired bootstrap over the
                            test speeches)
    rnn-vanishing-gradient  orders of magnitude the gradient of a tanh RNN decays over `distance` tokens, beyond
                            the LSTM's: mean of log10(LSTM ratio) - log10(RNN ratio) > 2 (paired bootstrap over
                            held-out sequences)
"""

from __future__ import annotations

import json
from pathlib import Path

from hfrepro.claims import Claim, StageContext, StageResult, decide, paired_bootstrap
from hfrepro.config import config_path, load_yaml
from hfrepro.data import load as load_dataset
from hfrepro.errors import UserError
from hfrepro.fsutil import read_json
from hfrepro.lm.data import blocks, token_stream
from hfrepro.lm.scoring import load_lm
from hfrepro.lm.text import load_corpus
from hfrepro.models import load_tokenizer, resolve
from hfrepro.report import figure, md_table
from hfrepro.reproduce.plan import RecipeRun
from hfrepro.transformer import attention, gradients, nextword, positions, tokens

CLAIMS = [
    Claim("gpt1-pretraining-helps", "Pre-training helps: a pretrained GPT fine-tuned on a small labelled task beats "
                                    "the same network trained on the task alone (GPT-1)"),
    Claim("rnn-vanishing-gradient", "A plain RNN's gradient vanishes with distance by orders of magnitude more "
                                    "than an LSTM's"),
]
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
RUNS = [RecipeRun("gpt1", args=("--model_name_or_path", "{root}/lm/clm")),
        RecipeRun("lstm", name="lstm", config="lstm/gradients"),        # trains the tokenizer the others share
        *(RecipeRun("lstm", name=c, config="lstm/gradients", args=("--cell", c, "--tokenizer", "{stage}/lstm"))
          for c in CELLS[1:])]
ORDERS = 2        # the claim's threshold: orders of magnitude (a factor of 100)
SMOL, BERT = "smollm2-135m-instruct", "minilm-l6"


def section(ctx: StageContext) -> StageResult:
    s = load_yaml(config_path("reproduce/transformer", ctx.budget))
    parts, metrics = [], {}
    for name, fn in (("attention", _attention), ("positions", _positions), ("nextword", _nextword),
                     ("tokens", _tokens), ("gradients", _gradients), ("gpt1", _gpt1)):
        md, m = fn(ctx, s)
        parts.append(md)
        metrics[name] = m
    claims = {"gpt1-pretraining-helps": metrics["gpt1"].pop("decision"),
              "rnn-vanishing-gradient": metrics["gradients"].pop("decision")}
    return StageResult(markdown="\n".join(parts), claims=claims, metrics=metrics)


# --- attention and positions --------------------------------------------------------------------------------

BERT_RUN = Path("bert") / "bert"   # the bert stage's masked LM (a BERT with rotary positions: RoFormer)


def _bert_stage_model(ctx: StageContext) -> Path | None:
    """The BERT the bert stage trained (its `bert` run), if that stage ran in this folder (the runner starts this
    stage after it: `Stage.after`)."""
    folder = ctx.root / BERT_RUN
    return folder if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file() else None


def _attention(ctx: StageContext, s: dict):
    from transformers import AutoModel

    gpt, gtok, _ = load_lm(str(ctx.root / "lm" / "clm"))
    rows, figs = [], []
    maps = {"our GPT (lm stage)": attention.gpt_attention(gpt, gtok, s["gpt_sentence"])}
    for label, path in (("BERT: MiniLM-L6 as shipped", BERT), ("BERT: the bert stage's model (rotary positions)",
                                                                   _bert_stage_model(ctx))):
        if path is not None:
            maps[label] = attention.encoder_attention(AutoModel.from_pretrained(str(_resolve(path))),
                                                      load_tokenizer(str(path)), s["bert_sentence"])
    translator = ctx.root / "seq2seq" / "run" / "transformer"
    trans = None
    if (translator / "config.json").is_file():
        from hfrepro.seq2seq.decode import load_model
        model, tok = load_model(translator)
        trans = attention.translator_attention(model, tok, s["translator_sentence"])
        for kind in ("encoder", "decoder", "cross"):
            maps[f"translator {kind}"] = trans[kind]
    for k, (label, att) in enumerate(maps.items()):
        path = ctx.dir / f"attention_{k}.png"
        attention.plot_attention(att["maps"], att["query"], att["key"], f"{label}: attention per layer and head", path)
        square = len(att["query"]) == len(att["key"]) and "cross" not in label
        rows.append({"model": label, "layers": len(att["maps"]), "heads": len(att["maps"][0]),
                     "tokens": len(att["query"]),
                     "weight on later tokens": attention.future_mass(att["maps"]) if square else None})
        figs.append(f"![{label}]({ctx.rel(path)})")
    md = ["### Attention maps", "",
          f"GPT on \"{s['gpt_sentence']}\", BERT on \"{s['bert_sentence']}\""
          + (f", the translator on \"{s['translator_sentence']}\" → \"{trans['translation']}\"" if trans else
             " (no seq2seq stage in this folder: no translator)") + ". Row i of a map is how token i spreads its "
          "attention (rows sum to 1).", "",
          md_table(rows, digits=3), *figs, "",
          "*Look for: GPT's maps and the translator's decoder are lower-triangular (the causal mask: no weight on "
          "later tokens), BERT's and the encoder's are full.*", ""]
    return "\n".join(md), {"models": rows, "translation": trans["translation"] if trans else None}


def _resolve(path) -> str:
    return resolve(str(path))


def _positions(ctx: StageContext, s: dict):
    from transformers import AutoModel

    gpt, _, _ = load_lm(str(ctx.root / "lm" / "clm"))
    c, learned = gpt.config, positions.learned(gpt)
    n, d = learned.shape if learned is not None else (c.max_position_embeddings, c.hidden_size)
    tables = {f"sinusoidal ({n} x {d}, Vaswani et al.)": positions.sinusoidal(n, d)}
    if learned is not None:  # GPT-2's block: a learned table added to the embeddings
        tables[f"learned: our GPT's wpe ({n} x {d})"] = learned
    else:                    # rotary positions: each query and key pair rotated by the angle p * theta_i
        dh = d // c.num_attention_heads
        tables[f"rotary: our GPT's query/key angles p·θ ({n} x {dh}, sin and cos)"] = positions.sinusoidal(
            n, dh, base=positions.rope_base(c))
    bert = positions.learned(AutoModel.from_pretrained(_resolve(BERT)))
    tables[f"learned: MiniLM's (first {n} of {len(bert)})"] = bert[:n]
    positions.plot_positions(tables, ctx.dir / "positions.png")
    rows = [{"encoding": name, "cosine(p, p+1)": positions.neighbour_similarity(t, 1),
             "cosine(p, p+16)": positions.neighbour_similarity(t, 16)} for name, t in tables.items()]
    md = ["### Positional encodings", "", md_table(rows, digits=3),
          *figure(ctx.rel(ctx.dir / "positions.png"), "positional encodings",
                  "Top: one row per position. Bottom: cosine similarity between positions; look for the bright "
                  "diagonal band: neighbouring positions look alike, by construction for the sinusoids, by training "
                  "for the learned tables.")]
    return "\n".join(md), {"rows": rows}


# --- the masked next word, tokens ---------------------------------------------------------------------------

def _nextword(ctx: StageContext, s: dict):
    from transformers import AutoModel

    smol, stok, _ = load_lm(SMOL)
    start = stok.convert_tokens_to_ids("<|endoftext|>")
    gpt_fx = nextword.causal_future_effect(smol, stok, start_id=start)
    bert_fx = nextword.encoder_future_effect(AutoModel.from_pretrained(_resolve(BERT)).eval(), load_tokenizer(BERT),
                                             s["bert_future_sentence"], s["bert_future_prefix"])
    ranked = nextword.rank_next_words(smol, stok, start_id=start)
    toks = [p["piece"] for p in tokens.pieces(nextword.SENTENCE, stok)]
    nextword.plot_mask(toks, ctx.dir / "causal_mask.png")
    md = ["### \"오늘 나는 ___\": the next word, with the future masked", "",
          f"SmolLM2 spends {len(toks)} tokens on \"{nextword.SENTENCE}\", tokens per syllable: "
          + ", ".join(f"{c} {n}" for c, n in tokens.per_character(nextword.SENTENCE, stok))
          + " (a Hangul syllable is 3 bytes of UTF-8, and its byte-level BPE learned few Korean merges). Reading "
          "\"오늘 나는\" alone or the whole "
          f"sentence changes its next-token scores after \"오늘 나는\" by at most **{gpt_fx['max_abs_diff']:.1e}** "
          f"(logits up to {gpt_fx['scale']:.1f}): the causal mask hides the future, so the prediction is the same. "
          f"A bidirectional encoder (MiniLM, a BERT) is different: the vectors of \"{s['bert_future_prefix']}\" "
          f"change by up to **{bert_fx['max_abs_diff']:.2f}** (values up to {bert_fx['scale']:.1f}) when the rest of "
          f"\"{s['bert_future_sentence']}\" is there.", "",
          "Which word does SmolLM2 expect after \"오늘 나는\"? (log2 probability of each candidate's tokens):", "",
          md_table(ranked, digits=3),
          *figure(ctx.rel(ctx.dir / "causal_mask.png"), "causal mask",
                  "The mask over the sentence's tokens: token #i predicts token #i+1 from the green cells of its row "
                  "only.")]
    return "\n".join(md), {"causal": gpt_fx, "encoder": bert_fx, "ranked": ranked}


def _tokens(ctx: StageContext, s: dict):
    smol = load_tokenizer(SMOL)
    ours = load_tokenizer(str(ctx.root / "lm" / "clm"))
    en = tokens.pieces(s["english_sentence"], smol)
    pairs = load_dataset("lo-help-en-ko")["test"].select(range(s["language_pairs"]))
    cmp = tokens.compare_languages({"SmolLM2 (byte-level BPE)": smol, "our GPT (Shakespeare BPE)": ours,
                                    "MiniLM (WordPiece, uncased)": load_tokenizer(BERT)},
                                   list(zip(pairs["en"], pairs["ko"])))
    md = ["### Tokens", "", f"`hfrepro tokenize --tokenizer {SMOL} --text \"{s['english_sentence']}\"`:", "",
          md_table([{k: v for k, v in r.items() if k != "#"} for r in en]),
          f"What the same content costs in tokens ({s['language_pairs']} LibreOffice help paragraphs, English and "
          "their Korean translation):", "", md_table(cmp, digits=2), ""]
    return "\n".join(md), {"english": en, "languages": cmp}


# --- vanishing gradients, GPT-1 ------------------------------------------------------------------------------

def _gradients(ctx: StageContext, s: dict):
    models = {c: load_lm(str(ctx.run_dir(c)))[:2] for c in CELLS}
    tok = models["lstm"][1]
    K = s["distance"]
    docs = load_corpus("shakespeare").documents("test", s["gradient_chars"], seed=ctx.seed)
    seqs = blocks(token_stream(tok, docs), K + 2)[: s["sequences"]]
    decays = {c: gradients.log_decay(gradients.input_gradient_norms(m, seqs, K)) for c, (m, _) in models.items()}
    gradients.plot_decay(decays, ctx.dir / "gradient_decay.png", K)
    gradients.plot_derivatives(ctx.dir / "derivatives.png")
    ids = tok(s["gate_sentence"], add_special_tokens=False)["input_ids"]
    gradients.plot_gates(gradients.lstm_gates(models["lstm"][0], ids), [tok.decode([i]) for i in ids],
                         ctx.dir / "lstm_gates.png")
    rows = [{"cell": c, "log10 ratio at k=8": float(d[:, 8].mean()), f"log10 ratio at k={K}": float(d[:, K].mean()),
             "eval loss": read_json(ctx.run_dir(c) / "metrics.json")["eval_loss"]} for c, d in decays.items()]
    decision = vanishing_claim(decays["rnn_tanh"][:, K], decays["lstm"][:, K], K)
    md = ["### Why RNNs gave way: the vanishing gradient", "",
          "Four recurrent LMs, the same but for the cell, trained on the same text for the same steps. For "
          f"{len(seqs)} held-out sequences: the gradient of the loss at the last token with respect to the input "
          "k tokens earlier, relative to k = 0, in orders of magnitude (log10).", "", md_table(rows, digits=2),
          *figure(ctx.rel(ctx.dir / "gradient_decay.png"), "gradient decay",
                  "Look for the slopes: the tanh RNN's line falls fastest; the LSTM's and GRU's stay far higher: "
                  "their gates carry the signal back."),
          *figure(ctx.rel(ctx.dir / "derivatives.png"), "derivatives",
                  "The slope of each activation: backpropagation multiplies one per step; tanh' <= 1 and "
                  "sigmoid' <= 1/4 shrink the product."),
          *figure(ctx.rel(ctx.dir / "lstm_gates.png"), "LSTM gates",
                  f"The LSTM's gates on \"{s['gate_sentence']}\": a forget gate near 1 keeps its cell's content.")]
    return "\n".join(md), {"rows": rows, "sequences": len(seqs), "decision": decision}


def vanishing_claim(rnn_log_ratio, lstm_log_ratio, distance: int, seed: int = 0):
    """log10(LSTM's gradient ratio) - log10(the tanh RNN's) at `distance`, per sequence; > ORDERS."""
    a, b = list(map(float, rnn_log_ratio)), list(map(float, lstm_log_ratio))
    return decide("rnn-vanishing-gradient", f"extra orders of magnitude the tanh RNN's gradient loses over {distance} "
                  "tokens (log10 LSTM ratio − log10 RNN ratio)", *paired_bootstrap(a, b, seed=seed), threshold=ORDERS,
                  uncertainty=f"paired bootstrap over {len(a)} held-out sequences",
                  evidence=f"mean log10 ratio at k={distance}: tanh RNN {sum(a) / len(a):.2f}, "
                           f"LSTM {sum(b) / len(b):.2f}")


def _gpt1(ctx: StageContext, s: dict):
    run = ctx.run_dir("gpt1")
    m = read_json(run / "metrics.json")
    correct = {}
    for arm in ("pretrained", "scratch"):
        rows = [json.loads(x) for x in (run / arm / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
        correct[arm] = [float(r["label"] == r["prediction"]) for r in rows]
    decision = pretraining_claim(correct["scratch"], correct["pretrained"], m["majority_baseline"])
    rows = [{"start": arm, "test accuracy": m[arm]["accuracy"], "steps": m[arm]["steps"],
             "train loss": m[arm]["train_loss"], "train s": m[arm]["train_seconds"]}
            for arm in ("pretrained", "scratch")]
    cfg = load_yaml(run / "config.yaml")
    if cfg.get("task", "play") == "order":
        task = (f"Is a speech's word order as written, or are its words shuffled? The first {cfg['max_words']} words "
                f"of speeches of {cfg['min_words']} or more, half of them shuffled: the two classes share their "
                f"words, so only the order, which pre-training read, tells them apart (GPT-1's largest gain was on "
                f"such a task, CoLA's grammatical acceptability). {cfg['train_per_label']} labelled speeches per "
                f"class, {m['test_examples']} test speeches (majority class: {m['majority_baseline']:.3f}).")
    else:
        task = (f"Which play is a speech from ({', '.join(m['labels'])})? {cfg['train_per_label']} labelled speeches "
                f"per play, {m['test_examples']} test speeches (most frequent play: {m['majority_baseline']:.3f}).")
    md = ["### GPT-1's recipe: pre-train, then fine-tune", "",
          task + " The same GPT2ForSequenceClassification, tokenizer, data and steps; it starts from the lm stage's "
          "pretrained GPT (unlabelled Shakespeare) or from random weights.", "", md_table(rows, digits=3), ""]
    return "\n".join(md), {"rows": rows, "decision": decision}


def pretraining_claim(scratch, pretrained, majority: float, seed: int = 0):
    """Test accuracy, pretrained arm minus scratch arm, paired over the same test items; > 0."""
    n = len(pretrained)
    if len(scratch) != n or n == 0:
        raise UserError("the two arms of gpt1 scored different test sets", fix="re-run hfrepro gpt1 with both arms")
    return decide("gpt1-pretraining-helps", "test accuracy, pretrained − from scratch",
                  *paired_bootstrap(scratch, pretrained, seed=seed), threshold=0.0,
                  uncertainty=f"paired bootstrap over {n} test speeches",
                  evidence=f"pretrained {sum(pretrained) / n:.3f}, scratch {sum(scratch) / n:.3f}, majority class "
                           f"{majority:.3f}")
