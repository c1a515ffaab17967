"""hfrepro: the road from word2vec to ChatGPT, stage by stage, on the Hugging Face stack.

Importing the package is cheap: heavy libraries (torch, transformers, gensim, ...) load inside the
modules that need them. It also lets transformers' Auto classes find hfrepro's own model classes
(`AutoModel.from_pretrained` of a GRU seq2seq or LSTM run folder): see `hfrepro.automodels`.
"""

__version__ = "0.1.0"

from hfrepro import automodels  # noqa: E402
from hfrepro.errors import UserError  # noqa: E402,F401

automodels.install()  # hfrepro's model types (LSTM LM, GRU seq2seq) for the Auto classes; nothing loads now
