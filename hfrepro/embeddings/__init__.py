"""Stage 1: word embeddings. word2vec CBOW and skip-gram trained with gensim, evaluated on analogies and
word similarity, averaged into sentence vectors for classification.

    text       tokenisation (lower-cased letter runs; a light Korean particle stripper) and corpora
    pairs      the (centre, context) training pairs of each mode, and the one-hot vs dense picture
    vectors    load/save word vectors (safetensors + vocab, gensim KeyedVectors, word2vec text), OOV errors
    evaluate   questions-words analogies, WordSim353, SimLex-999 (gensim's protocol, with coverage)
    train      the recipe's logic: train both modes, resume per epoch, evaluate, write tables and plots
    plot       2-D PCA picture of chosen words with the analogy offsets drawn
    classify   averaged word vectors vs majority-class and bag-of-words baselines
    stage      `hfrepro reproduce`'s stage 1
    cli        `hfrepro embeddings ...`
"""
