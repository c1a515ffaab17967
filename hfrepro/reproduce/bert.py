"""Chapter stage `bert`: BERT, whole. Pre-training (masked LM + next-sentence prediction), "BERT sees both sides",
fine-tuning with a task head, and contextual vs static word vectors.

RUNS (budgets: recipes/configs/<config>/<budget>.yaml; the section's own settings in
recipes/configs/reproduce/bert/<budget>.yaml):

    bert            recipes/mlm.py: BERT's MLM + NSP from scratch on Shakespeare's plays (rotary positions)
    left-to-right   recipes/mlm.py --causal: the same blocks with a causal mask, the next-token loss at a random 15%
                    of the positions of each batch (as many targets as BERT's masks, at about its cost per step),
                    the same text, tokenizer, batch size and steps (its tokenizer is bert's)
    classify        recipes/classify.py: a held-out speech's word order as written or shuffled (the default task;
                    or its genre, --task label), from the pre-trained encoder
    classify-random recipes/classify.py --random_init: the same, from random weights

The section scores both pre-trained models on the same held-out windows (hfrepro.bert.evaluate), reads the two
classifiers' predictions, measures contextual vs static vectors (hfrepro.bert.senses) with our BERT, the same
architecture untrained, the embedded MiniLM encoder and word2vec (the embeddings stage's skip-gram when the main
job's folder has it), and decides the claims (hfrepro.bert.claims).
"""

from __future__ import annotations

from pathlib import Path

from hfrepro.bert import claims as rules
from hfrepro.bert.data import load_documents, stream, tokenize_documents
from hfrepro.bert.evaluate import (
    left_to_right_predictions,
    masked_predictions,
    masked_windows,
    nsp_predictions,
    position_items,
)
from hfrepro.bert.mlm import mask_absorbs_space
from hfrepro.bert.model import load_pretraining
from hfrepro.bert.senses import SENSES, contextual_vectors, cosines, occurrences, separation, triples
from hfrepro.claims import Claim, StageContext, StageResult, bootstrap
from hfrepro.config import config_path, load_yaml
from hfrepro.errors import UserError
from hfrepro.fsutil import atomic_write_json, read_json
from hfrepro.report import figure, md_table, pyplot, save_figure
from hfrepro.reproduce.plan import RecipeRun, timed
from hfrepro.runtime import read_log

CLAIMS = [
    Claim("bert-mlm-baseline", "A BERT masked LM trained from scratch predicts held-out masked tokens at least "
                               "twice as well as the most frequent token"),
    Claim("bert-both-sides", "BERT sees both sides: at the same masked middle positions it beats a left-to-right "
                             "model of the same size trained on the same text for the same steps, learning from as "
                             "many predicted tokens per step"),
    Claim("bert-nsp", "Next-sentence prediction is learnt: held-out accuracy above the 50% of chance"),
    Claim("bert-finetune", "Pre-training helps: with a classification head, the pre-trained encoder beats the same "
                           "model from random weights (same examples, same steps)"),
]
RUNS = [
    RecipeRun("mlm", name="bert"),
    RecipeRun("mlm", name="left-to-right", config="mlm/left_to_right", args=("--tokenizer", "{stage}/bert")),
    RecipeRun("classify", args=("--model_name_or_path", "{stage}/bert")),
    RecipeRun("classify", name="classify-random", config="classify/random_init",
              args=("--model_name_or_path", "{stage}/bert")),
]
WORD2VEC = Path("embeddings") / "word2vec" / "skipgram"
MINILM = "minilm-l6"


def section(ctx: StageContext) -> StageResult:
    settings = load_yaml(config_path("reproduce/bert", ctx.budget))
    runs = {r.folder: (load_yaml(ctx.run_dir(r.folder) / "config.yaml"),
                       read_json(ctx.run_dir(r.folder) / "metrics.json")) for r in RUNS}
    times: dict[str, float] = {}
    with timed(times, "held-out windows and pairs", "bert"):
        pre = pretraining_items(ctx, runs["bert"][0], runs["bert"][1], settings)
    with timed(times, "fine-tuning predictions", "bert"):
        fine = finetune_items(ctx)
    with timed(times, "contextual vs static vectors", "bert"):
        senses = senses_table(ctx, settings)
    claims = {
        "bert-mlm-baseline": rules.mlm_claim(pre["window_correct"], pre["window_majority"], seed=ctx.seed),
        "bert-both-sides": rules.both_sides_claim(pre["middle_bert"], pre["middle_l2r"], seed=ctx.seed),
        "bert-nsp": rules.nsp_claim(pre["nsp_correct"], seed=ctx.seed),
        "bert-finetune": rules.finetune_claim(fine["pretrained"], fine["random"], seed=ctx.seed)}
    figures = {"curves": plot_curves(ctx, runs["classify"][0].get("task", "label")),
               "positions": plot_positions(pre, ctx.dir / "both_sides.png"),
               "senses": plot_senses(senses, ctx.dir / "senses.png")}
    metrics = {
        "masked_accuracy": pre["masked_accuracy"], "majority_baseline_accuracy": pre["majority_accuracy"],
        "masked_tokens": pre["masked_tokens"], "middle_positions": len(pre["middle_bert"]),
        "middle_bert_accuracy": _mean(pre["middle_bert"]), "middle_left_to_right_accuracy": _mean(pre["middle_l2r"]),
        "nsp_accuracy": _mean(pre["nsp_correct"]), "nsp_pairs": len(pre["nsp_correct"]),
        "classify_pretrained_accuracy": _mean(fine["pretrained"]), "classify_random_accuracy": _mean(fine["random"]),
        "classify_items": len(fine["pretrained"]), "senses": senses["summary"],
        "fill_mask": runs["bert"][1].get("fill_mask", {}),
        "seconds": {**{f"{k} train": m.get("train_seconds") for k, (_, m) in runs.items()}, **times}}
    atomic_write_json(ctx.dir / "results.json", {"budget": ctx.budget, "seed": ctx.seed, **metrics,
                                                 "claims": {k: d.to_dict() for k, d in claims.items()}})
    md = markdown(ctx, runs, pre, fine, senses, claims, figures, metrics)
    return StageResult(markdown=md, claims=claims, metrics=metrics)


# --- items ------------------------------------------------------------------------------------------------------

def pretraining_items(ctx: StageContext, cfg: dict, m: dict, settings: dict) -> dict:
    """Both pre-trained models on the same held-out windows and masked positions; NSP on held-out pairs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bert_dir, l2r_dir = ctx.run_dir("bert"), ctx.run_dir("left-to-right")
    l2r_cfg = load_yaml(l2r_dir / "config.yaml")
    same = ("dataset", "block_size", "n_layer", "n_embd", "n_head", "positions", "max_steps",
            "per_device_train_batch_size", "mlm_probability", "seed")
    differ = [f"{k} {cfg.get(k)} vs {l2r_cfg.get(k)}" for k in same if cfg.get(k) != l2r_cfg.get(k)]
    if differ:
        raise UserError("the left-to-right twin was not trained like the BERT it is compared with: "
                        + ", ".join(differ),
                        fix="give recipes/configs/mlm/left_to_right/<budget>.yaml the settings of mlm/<budget>.yaml")
    tok = mask_absorbs_space(AutoTokenizer.from_pretrained(bert_dir))
    bert, l2r = load_pretraining(bert_dir), AutoModelForCausalLM.from_pretrained(l2r_dir)
    test_docs = tokenize_documents(tok, load_documents(cfg["dataset"], "test", cfg["text_column"],
                                                       cfg["document_column"]))
    x, chosen = masked_windows(tok, stream(test_docs), cfg["block_size"], cfg["eval_windows"], ctx.seed,
                               cfg["mlm_probability"])
    bert_pred, _ = masked_predictions(bert, x, chosen, tok.mask_token_id)
    l2r_pred, _ = left_to_right_predictions(l2r, x, chosen)
    items = position_items(x, chosen, settings["margin"])
    target, window, middle = items["target"], items["window"], items["middle"]
    b_ok, l_ok = (bert_pred == target).int(), (l2r_pred == target).int()
    maj_ok = (target == m["majority_token_id"]).int()
    n = len(x)
    labels, preds = nsp_predictions(bert, tok, test_docs, cfg["block_size"], settings.get("nsp_pairs") or None,
                                    ctx.seed)
    return {
        "window_correct": [int(b_ok[window == w].sum()) for w in range(n)],
        "window_majority": [int(maj_ok[window == w].sum()) for w in range(n)],
        "masked_accuracy": float(b_ok.float().mean()), "majority_accuracy": float(maj_ok.float().mean()),
        "masked_tokens": len(target), "windows": n, "width": x.shape[1] - 2,
        "middle_bert": b_ok[middle].tolist(), "middle_l2r": l_ok[middle].tolist(),
        "position": items["position"].tolist(), "bert_ok": b_ok.tolist(), "l2r_ok": l_ok.tolist(),
        "nsp_correct": [int(p == y) for p, y in zip(preds, labels)], "margin": settings["margin"]}


def finetune_items(ctx: StageContext) -> dict:
    """Right (0/1) per held-out item for the two classifiers; they must have answered the same items."""
    from hfrepro.data import read_jsonl

    a, b = (read_jsonl(ctx.run_dir(name) / "predictions.jsonl") for name in ("classify", "classify-random"))
    if [r["text"] for r in a] != [r["text"] for r in b]:
        raise UserError("the two classifiers were scored on different held-out items",
                        fix="give recipes/configs/classify/random_init/<budget>.yaml the data settings of "
                            "classify/<budget>.yaml")
    return {"pretrained": [int(r["prediction"] == r["label"]) for r in a],
            "random": [int(r["prediction"] == r["label"]) for r in b],
            "labels": sorted({r["label"] for r in a})}


def senses_table(ctx: StageContext, settings: dict) -> dict:
    """Cosine of the same word within and across senses for each model; word2vec's one vector gives 1 and 1."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    occ = occurrences(settings["senses_per_sense"], seed=ctx.seed)
    trip = triples(occ, seed=ctx.seed)
    bert_dir = ctx.run_dir("bert")
    tok = AutoTokenizer.from_pretrained(bert_dir)
    models = {"BERT (ours, pre-trained)": (AutoModel.from_pretrained(bert_dir), tok),
              "BERT (same architecture, random weights)": (_random_bert(AutoConfig.from_pretrained(bert_dir),
                                                                        ctx.seed), tok)}
    if settings.get("minilm", True):
        try:
            from hfrepro.models import resolve
            path = resolve(MINILM)
            models["all-MiniLM-L6-v2 (embedded, 22.7M)"] = (AutoModel.from_pretrained(path),
                                                           AutoTokenizer.from_pretrained(path))
        except UserError as e:
            print(f"[bert] MiniLM not used: {e.what}", flush=True)
    vectors = {name: contextual_vectors(model, t, occ) for name, (model, t) in models.items()}
    static = _word2vec_name(ctx)
    vectors[static] = None
    rows, summary = [], {}
    for name, v in vectors.items():
        sep = separation(v, trip)
        est, lo, hi = bootstrap(sep, seed=ctx.seed)
        summary[name] = {"separation": est, "lo": lo, "hi": hi, "items": len(sep)}
        rows += [{"model": name, **r} for r in cosines(v, occ, trip)]
    return {"rows": rows, "summary": summary, "examples": _examples(occ)}


def _positions(cfg: dict) -> str:
    if cfg.get("positions", "absolute") == "rotary":
        return "rotary positions: BERT's layers as RoFormer builds them"
    return "BERT's learned absolute positions"


def _targets(cfg: dict) -> str:
    share = cfg.get("target_share", 1.0)
    if share >= 1:
        return "at every position"
    return f"at a random {share:.0%} of the positions of each batch (as many targets as BERT's masks)"


def _random_bert(config, seed: int):
    import torch
    from transformers import AutoModel

    torch.manual_seed(seed)
    return AutoModel.from_config(config)


def _word2vec_name(ctx: StageContext) -> str:
    """word2vec gives one vector per word: the cosine of "will" with "will" is 1 in any two sentences. The row
    names the embeddings stage's skip-gram when this main job holds it."""
    folder = ctx.root / WORD2VEC
    if (folder / "model.safetensors").is_file():
        from hfrepro.embeddings import vectors as w2v
        kv = w2v.load(folder)
        missing = [w for w, *_ in SENSES if w not in kv.key_to_index]
        return f"word2vec skip-gram (stage 1, {len(kv):,} words{'; missing ' + ', '.join(missing) if missing else ''})"
    return "word2vec (any static vectors: one per word)"


def _examples(occ) -> list[dict]:
    out = []
    for word, *senses in SENSES:
        for k, (name, _) in enumerate(senses):
            o = next((o for o in occ if o.word == word and o.sense == k), None)
            if o is not None:
                out.append({"word": word, "sense": name, "example": o.text})
    return out


# --- figures ----------------------------------------------------------------------------------------------------

def plot_curves(ctx: StageContext, task: str) -> Path:
    """Training loss of the pre-training runs and of the two classifiers (fine-tuned on `task`), against steps."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, label in (("bert", "BERT (MLM + NSP)"), ("left-to-right", "left-to-right twin")):
        log = read_log(ctx.run_dir(name) / "log.jsonl")
        tr = [(r["step"], r["loss"]) for r in log if "loss" in r and "step" in r]
        ev = [(r["step"], r["eval_loss"]) for r in log if "eval_loss" in r and "step" in r]
        line, = ax1.plot(*zip(*tr), label=f"{label}, train") if tr else (None,)
        if ev:
            ax1.plot(*zip(*ev), "o--", color=line.get_color() if line else None, label=f"{label}, validation")
    ax1.set(xlabel="step", ylabel="loss (nats)", title="pre-training")
    for name, label in (("classify", "pre-trained encoder"), ("classify-random", "random init")):
        log = read_log(ctx.run_dir(name) / "log.jsonl")
        tr = [(r["step"], r["loss"]) for r in log if "loss" in r and "step" in r]
        if tr:
            ax2.plot(*zip(*tr), label=label)
    ax2.set(xlabel="step", ylabel="cross-entropy (nats)", title=f"fine-tuning: {task_name(task)}")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    path = ctx.dir / "curves.png"
    save_figure(fig, path)
    return path


def plot_positions(pre: dict, path: Path) -> Path:
    """Accuracy by position in the window: the left-to-right model improves as its left side grows, BERT does
    not need to wait."""
    import numpy as np

    plt = pyplot()
    pos, b, l_ = (np.asarray(pre[k]) for k in ("position", "bert_ok", "l2r_ok"))
    width = pre["width"]
    bins = np.array_split(np.arange(1, width + 1), min(8, width))
    xs = [float(b_.mean()) for b_ in bins]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for ok, label in ((b, "BERT (both sides)"), (l_, "left-to-right twin")):
        ys = [ok[np.isin(pos, g)].mean() if np.isin(pos, g).any() else np.nan for g in bins]
        ax.plot(xs, ys, "o-", label=label)
    ax.axvspan(0.5, pre["margin"] + 0.5, color="0.9")
    ax.axvspan(width - pre["margin"] + 0.5, width + 0.5, color="0.9")
    ax.set(xlabel="position of the masked token in the window (grey: outside the middle)",
           ylabel="top-1 accuracy", title="the same held-out tokens, predicted from both sides vs from the left")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
    return path


def plot_senses(senses: dict, path: Path) -> Path:
    plt = pyplot()
    names = list(senses["summary"])
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    est = [senses["summary"][n]["separation"] for n in names]
    err = [[e - senses["summary"][n]["lo"] for n, e in zip(names, est)],
           [senses["summary"][n]["hi"] - e for n, e in zip(names, est)]]
    ax.barh(range(len(names)), est, xerr=err, color=["C0", "C7", "C2", "C3"][:len(names)])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.axvline(0, color="k", lw=0.8)
    ax.set(xlabel="cos(same sense) − cos(other sense), mean over sentences (95% interval)",
           title="the same word in two senses: " + ", ".join(w for w, *_ in SENSES))
    ax.invert_yaxis()
    save_figure(fig, path)
    return path


# --- the section ------------------------------------------------------------------------------------------------

def task_name(task: str) -> str:
    """The fine-tuning task, as the section names it."""
    return "a speech's word order" if task == "order" else "genre of a speech"


def markdown(ctx, runs, pre, fine, senses, claims, figures, metrics) -> str:
    bcfg, bm = runs["bert"]
    lcfg, lm = runs["left-to-right"]
    ccfg, cm = runs["classify"]
    _, rm = runs["classify-random"]
    fills = bm.get("fill_mask", {})
    lines = [
        f"A {bm['parameters']:,}-parameter BERT ({bcfg['n_layer']} layers × {bcfg['n_embd']}, {bcfg['n_head']} heads, "
        f"{bm['vocab_size']:,}-token byte-level BPE, {_positions(bcfg)}) pre-trained from scratch on the training "
        f"plays of **{bcfg['dataset']}** for {bm['steps']} steps of {bcfg['per_device_train_batch_size']} sentence "
        f"pairs of {bcfg['block_size']} tokens ({bm['train_seconds']:.0f} s): masked LM (15% of tokens, 80/10/10) plus "
        "next-sentence prediction (half of the pairs IsNext, half a run of sentences from another play). Its "
        f"left-to-right twin ({lm['parameters']:,} parameters: the same blocks with a causal mask) read the same "
        f"text for the same steps and batch size, predicting the next token {_targets(lcfg)} "
        f"({lm['train_seconds']:.0f} s). Every score is on held-out plays (the test split).", "",
        md_table([
            {"measure": "masked-token accuracy (held-out, 15% masked)", "value": pre["masked_accuracy"],
             "reference": f"most frequent token ({bm.get('majority_token', '')!r}): {pre['majority_accuracy']:.3f}",
             "items": f"{pre['masked_tokens']:,} tokens in {pre['windows']:,} windows"},
            {"measure": "middle positions: BERT (both sides) vs left-to-right",
             "value": metrics["middle_bert_accuracy"],
             "reference": f"left-to-right: {metrics['middle_left_to_right_accuracy']:.3f}",
             "items": f"{metrics['middle_positions']:,} positions ≥ {pre['margin']} tokens from either end"},
            {"measure": "next-sentence accuracy", "value": metrics["nsp_accuracy"], "reference": "chance: 0.5",
             "items": f"{metrics['nsp_pairs']:,} held-out pairs"},
            {"measure": f"{task_name(ccfg.get('task', 'label'))} ({', '.join(fine['labels'])}), pre-trained encoder",
             "value": metrics["classify_pretrained_accuracy"],
             "reference": f"random init: {metrics['classify_random_accuracy']:.3f}; majority class: "
                          f"{cm['majority_baseline_accuracy']:.3f}",
             "items": f"{len(fine['pretrained']):,} held-out speeches; {cm['train_examples']:,} labelled, "
                      f"{cm['steps']} steps each"}], digits=3),
        "`pipeline('fill-mask')` with our BERT:", "",
        *[f"- \"{s}\": " + ", ".join(f"`{t}` {p:.2f}" for t, p in top) for s, top in fills.items()], "",
        *figure(ctx.rel(figures["curves"]), "pre-training and fine-tuning curves",
                "Left: the pre-training losses falling (BERT's is masked LM + NSP, the twin's next-token loss); "
                "right: look at whether the pre-trained encoder's classifier starts and stays below the one from "
                "random weights."),
        *figure(ctx.rel(figures["positions"]), "accuracy by position",
                "Look at the left end: with little left context the left-to-right model guesses; BERT reads the "
                "right side too."),
        senses_markdown(ctx, senses, figures["senses"]),
        f"Held-out predictions of both classifiers: `{ctx.rel(ctx.run_dir('classify') / 'predictions.jsonl')}`, "
        f"`{ctx.rel(ctx.run_dir('classify-random') / 'predictions.jsonl')}`; random-init classifier "
        f"{rm['accuracy']:.3f}. Timings (s): " + ", ".join(f"{k} {v}" for k, v in metrics["seconds"].items()), "",
    ]
    return "\n".join(lines)


def senses_markdown(ctx, senses: dict, figure_path: Path) -> str:
    s = senses["summary"]
    rows = [{"model": k, "cos(same sense) − cos(other sense)": v["separation"], "95% interval":
             f"[{v['lo']:.3f}, {v['hi']:.3f}]", "sentences": v["items"]} for k, v in s.items()]
    return "\n".join([
        "**Contextual vs static vectors.** The same word in two senses, in sentences of the embedded plays and "
        "Bible (the sense read off the neighbouring words: " + "; ".join(
            f"*{e['word']}* {e['sense']}: \"{e['example'][:70]}\"" for e in senses["examples"][:4]) + "). "
        "word2vec has one vector per word, so its cosine is 1 within and across senses; a contextual vector "
        "depends on the sentence. The random-weights row is the control: attention mixes context into any "
        "vector, so the trained models' advantage over it is what pre-training learnt.", "",
        md_table(rows, digits=3), "",
        md_table(senses["rows"], digits=3), "",
        *figure(ctx.rel(figure_path), "senses",
                "Bars to the right of 0: the model's vectors for a word are closer within a sense than across "
                "senses.")])


def _mean(xs) -> float:
    return sum(xs) / len(xs) if len(xs) else float("nan")

