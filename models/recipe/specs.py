"""The two trained reference models: what differs between them, in one place.

llama-brown: Brown corpus, one document per line, trained and evaluated on [BOS] + encode(line) per line
             (the "lines" convention), identity-normalized SentencePiece BPE 4096.
llama-mix:   nlp-corpus (mixed-register English sentences with Unicode punctuation, accents, odd
             whitespace and control characters), trained and evaluated on ONE plain token stream, the
             whole file encoded at once with no BOS (the "whole" convention of the GPTQ/SparseGPT/Wanda/
             TEAL evaluation code), nmt_nfkc-normalized SentencePiece BPE 3072; smaller, another seed.
"""
import os

from llama import LlamaConfig

SPECS = {
    "llama-brown": {
        "convention": "lines",
        "seed": 1234,
        "config": dict(vocab_size=4096, hidden_size=256, intermediate_size=688, num_hidden_layers=6,
                       num_attention_heads=8, num_key_value_heads=2),
        "tokenizer": dict(vocab_size=4096, normalization_rule_name="identity"),
        "prompt": "The jury said",
        "encoding": "ascii",
    },
    "llama-mix": {
        "convention": "whole",
        "seed": 4321,
        "config": dict(vocab_size=3072, hidden_size=192, intermediate_size=512, num_hidden_layers=5,
                       num_attention_heads=6, num_key_value_heads=2),
        "tokenizer": dict(vocab_size=3072, normalization_rule_name="nmt_nfkc", character_coverage=0.9995),
        "prompt": "I think that",
        "encoding": "utf-8",
    },
}


def name():
    """The model the recipe works on: $RECIPE_MODEL, llama-brown by default."""
    n = os.environ.get("RECIPE_MODEL", "llama-brown")
    if n not in SPECS:
        raise SystemExit(f"unknown RECIPE_MODEL '{n}' (known: {', '.join(SPECS)})")
    return n


def spec():
    return SPECS[name()]


def config(vocab_size):
    c = dict(spec()["config"])
    assert c["vocab_size"] == vocab_size, (c["vocab_size"], vocab_size)
    return LlamaConfig(**c)
