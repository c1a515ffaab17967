"""Stage 2: language models, from counting to attention.

    hfrepro.lm.text      the corpus, the held-out text, the word (pre-token) split the n-gram models use
    hfrepro.lm.ngram     unigram / add-k bigram / interpolated Kneser-Ney n-gram models (vectorised numpy)
    hfrepro.lm.lstm      an LSTM language model in plain torch, trained by a small accelerate loop
    hfrepro.lm.clm       a GPT-2-architecture causal LM pretrained from scratch with the transformers Trainer
    hfrepro.lm.mlm       a BERT masked LM pretrained from scratch (BertForMaskedLM + the MLM collator)
    hfrepro.lm.scoring   bits per character for every model on the same held-out text (perplexity metric)
    hfrepro.lm.sampling  generation through `pipeline`, the temperature study (entropy, distinct-n)
    hfrepro.lm.arch      GPT-1/2/3 and BERT parameter counts built on the meta device
"""
