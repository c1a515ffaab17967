"""Stage 2: language models, from counting to attention (the recipes are recipes/{ngram,lstm,clm}.py; BERT is its own
chapter, hfrepro.bert).

    hfrepro.lm.text      the corpus, the held-out text, the word (pre-token) split the n-gram models use
    hfrepro.lm.ngram     unigram / add-k bigram / interpolated Kneser-Ney n-gram models (vectorised numpy)
    hfrepro.lm.lstm      an LSTM language model as a transformers PreTrainedModel (the Trainer trains it)
    hfrepro.lm.data      the neural models' tokenizer and token blocks
    hfrepro.lm.scoring   bits per character for every model on the same held-out text (perplexity metric)
    hfrepro.lm.ladder    the perplexity ladder decided on the same held-out speeches
    hfrepro.lm.sampling  generation through `pipeline`, the temperature study (diversity vs likelihood)
    hfrepro.lm.arch      GPT-1/2/3 and BERT parameter counts built on the meta device
"""
