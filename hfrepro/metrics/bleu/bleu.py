"""BLEU and chrF computed by sacrebleu, as an `evaluate` metric module written for hfrepro.

Load it offline by path (it is not on the Hub):

    import evaluate
    bleu = evaluate.load("/abs/path/to/hfrepro/metrics/bleu")
    bleu.compute(predictions=["the cat sat"], references=[["the cat sat down"]], tokenize="13a")
    # {'bleu': ..., 'chrf': ..., 'bleu_signature': 'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0', ...}

`tokenize` is sacrebleu's BLEU tokenizer: `13a` (default; English, French, ...), `intl`, `zh`, `char`,
`ko-mecab` / `ja-mecab` (need the MeCab packages), `none`. chrF works on characters and needs none.
The signatures returned are sacrebleu's own: put them next to every score you report.
The scores equal `sacrebleu REF -i HYP -tok TOKENIZE -m bleu chrf` on the same files.
"""

import datasets
import evaluate
import sacrebleu

_CITATION = """\
@inproceedings{papineni-etal-2002-bleu, title = "{B}leu: a Method for Automatic Evaluation of Machine Translation",
  author = "Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing", booktitle = "ACL", year = "2002"}
@inproceedings{popovic-2015-chrf, title = "chr{F}: character n-gram {F}-score for automatic {MT} evaluation",
  author = "Popovi{\\'c}, Maja", booktitle = "WMT", year = "2015"}
@inproceedings{post-2018-call, title = "A Call for Clarity in Reporting {BLEU} Scores", author = "Post, Matt",
  booktitle = "WMT", year = "2018"}
"""

_DESCRIPTION = """\
Corpus-level BLEU (Papineni et al. 2002) and chrF (Popovic 2015) computed by sacrebleu, with sacrebleu's
signatures so that a score says how it was computed (tokenisation, casing, smoothing, version).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of hypothesis strings (one per segment).
    references: list of reference strings, or list of lists of references (same number for every segment).
    tokenize: sacrebleu BLEU tokenizer, default "13a". Use "char" or "ko-mecab" for Korean, "zh" for Chinese.
    lowercase: score case-insensitively (default False).
    chrf_word_order: 0 for chrF (default), 2 for chrF++.
Returns:
    bleu, chrf: corpus scores (0-100); precisions (1- to 4-gram, %), brevity_penalty, sys_len, ref_len;
    bleu_signature, chrf_signature: sacrebleu's signatures; bleu_string: sacrebleu's one-line summary.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Value("string")}),
            ],
            homepage="https://github.com/mjpost/sacrebleu",
            codebase_urls=["https://github.com/mjpost/sacrebleu"],
            license="Apache-2.0",
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False, chrf_word_order=0):
        refs = [[r] if isinstance(r, str) else list(r) for r in references]
        n_refs = {len(r) for r in refs}
        if len(n_refs) > 1:
            raise ValueError(f"every prediction needs the same number of references (got {sorted(n_refs)})")
        if tokenize not in sacrebleu.BLEU.TOKENIZERS:
            raise ValueError(f"unknown sacrebleu tokenizer {tokenize!r}; choose from {sacrebleu.BLEU.TOKENIZERS}")
        # sacrebleu wants one stream per reference "set": transpose segment-major to stream-major.
        streams = [list(s) for s in zip(*refs)] if refs else [[]]
        bleu = sacrebleu.BLEU(tokenize=tokenize, lowercase=lowercase)
        chrf = sacrebleu.CHRF(word_order=chrf_word_order, lowercase=lowercase)
        b = bleu.corpus_score(list(predictions), streams)
        c = chrf.corpus_score(list(predictions), streams)
        return {
            "bleu": b.score,
            "chrf": c.score,
            "precisions": list(b.precisions),
            "brevity_penalty": b.bp,
            "sys_len": b.sys_len,
            "ref_len": b.ref_len,
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature()),
            "bleu_string": b.format(signature=str(bleu.get_signature())),
        }
