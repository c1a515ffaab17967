"""hfrepro: the road from word2vec to ChatGPT, stage by stage, on the Hugging Face stack.

Importing the package is cheap: heavy libraries (torch, transformers, gensim, ...) load inside the
modules that need them.
"""

__version__ = "0.1.0"

from hfrepro.errors import UserError  # noqa: E402,F401
