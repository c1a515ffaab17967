"""Stage 4: inside the Transformer, and why RNNs gave way (`hfrepro transformer ...`, `hfrepro tokenize`).

    hfrepro.transformer.attention   attention maps per layer and head (GPT: causal; BERT; the translator)
    hfrepro.transformer.positions   sinusoidal and learned positional encodings
    hfrepro.transformer.nextword    "오늘 나는 치킨을 먹었다": the next word with the future masked
    hfrepro.transformer.tokens      BPE pieces and ids; what Korean costs in tokens
    hfrepro.transformer.gradients   the vanishing gradient: RNN vs LSTM vs GRU; activations' slopes; LSTM gates

GPT-1's semi-supervised recipe (pre-train, then fine-tune a classifier) is `recipes/gpt1.py`.
"""
