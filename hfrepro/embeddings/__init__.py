"""Stage 1: word embeddings, the library of recipes/word2vec.py (which trains gensim's Word2Vec itself).

    text       tokenisation (lower-cased letter runs; a light Korean particle stripper), corpora, the lo-help split
    epochs     per-epoch checkpoints and resume for gensim models, the modes trained side by side
    evaluate   questions-words analogies, WordSim353, SimLex-999 (gensim's protocol, with coverage), king - man + woman
    vectors    load/save word vectors (safetensors + vocab, gensim KeyedVectors, word2vec text), OOV errors
    classify   averaged word vectors vs majority-class and bag-of-words baselines
    plot       2-D PCA picture of chosen words with the analogy offsets drawn
    results    the results as people read them (results.md, the main job's section)
    pairs      the (centre, context) training pairs of each mode, and the one-hot vs dense picture
    cli        `hfrepro embeddings ...`: the tools (pairs, analogy, similar, evaluate, plot, classify)
"""
