#!/usr/bin/python3
"""Golden cases for Hugging Face tokenizer.json files, with ids from the Rust tokenizers library.

Usage: hf_tokenizer_golden.py TRAIN_TXT OUT_DIR NODE_MODULES

Learns a small byte-level BPE (GPT-2 byte alphabet, 600 merges) on the first 5,000 lines of TRAIN_TXT (the
llama-mix training text), writes it as tokenizer.json files whose normalizer and pre-tokenizer chains differ
(what SparseOnnx must apply as the Rust library does), then has the Rust library itself, through its official
Node binding (npm `tokenizers`, installed in NODE_MODULES), encode the texts of sentencepiece_golden.py plus a
special token (matched in the raw text) and an added token with normalized = true (matched after normalization).
Writes OUT_DIR/hf-<variant>.tokenizer.json and OUT_DIR/hf-<variant>.cases.json:
{"tokenizer": "<file>", "library": "tokenizers (node) <version>", "cases": [{"name", "text", "ids"}]}.
"""
import collections
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sentencepiece_golden import EDGE, whole_documents  # noqa: E402

MERGES = 600
GPT2_SPLIT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+")
CL100K = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
          r"\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
         r"\s+(?!\S)|\s+")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def learn_bpe(lines):
    """Plain BPE merge learning on byte-level words (counts of pre-split words); ties by the pair itself."""
    b2u = bytes_to_unicode()
    words = collections.Counter()
    for line in lines:
        for w in GPT2_SPLIT.findall(line):
            words[tuple(b2u[b] for b in w.encode("utf-8"))] += 1
    vocab = {b2u[b]: i for i, b in enumerate(sorted(b2u))}
    merges = []
    for _ in range(MERGES):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab[a + b] = len(vocab)
        merged = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + c
        words = merged
    return vocab, merges


def tokenizer_json(vocab, merges, normalizer, pre_tokenizer):
    eot = len(vocab)
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": eot, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True},
                         # A non-special added token matched in the normalized text (after NFKC/Lowercase...).
                         {"id": eot + 1, "content": "mxyz", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": True, "special": False}],
        "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def byte_level(add_prefix_space=False, use_regex=True):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True, "use_regex": use_regex}


def split(pattern):
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


VARIANTS = {
    # GPT-2: no normalizer, ByteLevel with its own regex.
    "gpt2": (None, byte_level()),
    # RoBERTa-like prefix space, with a normalizer chain of every supported kind.
    "chain": ({"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        {"type": "Replace", "pattern": {"String": "\t"}, "content": " "},
        {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Prepend", "prepend": "\u2581"}]}, byte_level(add_prefix_space=True)),
    # Llama 3: Split by the cl100k pattern, then ByteLevel without its regex.
    "llama3": (None, {"type": "Sequence", "pretokenizers": [split(CL100K), byte_level(use_regex=False)]}),
    # Qwen2: NFC, then Split by its pattern (single digits), then ByteLevel without its regex.
    "qwen2": ({"type": "NFC"}, {"type": "Sequence", "pretokenizers": [split(QWEN2), byte_level(use_regex=False)]}),
    # NFD and NFKD forms.
    "nfd": ({"type": "NFD"}, byte_level()),
    "nfkd": ({"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "Strip", "strip_left": False, "strip_right": True}]}, byte_level()),
}

NODE_ENCODE = r"""
const { Tokenizer } = require('tokenizers');
const fs = require('fs');
const [file, texts] = process.argv.slice(2);
const tokenizer = Tokenizer.fromFile(file);
const input = JSON.parse(fs.readFileSync(texts, 'utf8'));
(async () => {
  const out = [];
  for (const t of input) out.push((await tokenizer.encode(t, null, { addSpecialTokens: false })).getIds());
  process.stdout.write(JSON.stringify(out));
})();
"""


def main():
    train_txt, out, node_modules = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    lines = []
    with open(train_txt, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 5000:
                break
            lines.append(line.rstrip("\n"))
    vocab, merges = learn_bpe(lines)
    cases = EDGE + [("special_token", "before<|endoftext|>after <|endoftext|>"),
                    ("normalized_added_token", "a MXYZ b mxyz\uff4dxyz <|endoftext|>MXYZ")] + whole_documents(train_txt)
    version = json.load(open(os.path.join(node_modules, "tokenizers", "package.json")))["version"]
    script = os.path.join(out, ".encode.js")
    texts = os.path.join(out, ".texts.json")
    with open(script, "w") as f:
        f.write(NODE_ENCODE)
    with open(texts, "w", encoding="utf-8") as f:
        json.dump([t for _, t in cases], f)
    env = dict(os.environ, NODE_PATH=node_modules)
    for name, (normalizer, pre) in VARIANTS.items():
        tok_file = os.path.join(out, f"hf-{name}.tokenizer.json")
        with open(tok_file, "w", encoding="utf-8") as f:
            json.dump(tokenizer_json(vocab, merges, normalizer, pre), f, ensure_ascii=False, separators=(",", ":"))
        ids = json.loads(subprocess.run(["node", script, tok_file, texts], env=env, capture_output=True, text=True,
                                        check=True).stdout)
        doc = {"tokenizer": os.path.basename(tok_file), "library": f"tokenizers (node binding of the Rust library) {version}",
               "cases": [{"name": n, "text": t, "ids": i} for (n, t), i in zip(cases, ids)]}
        with open(os.path.join(out, f"hf-{name}.cases.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=True, separators=(",", ":"))
            f.write("\n")
        print(f"hf-{name}: {len(cases)} cases, {sum(len(i) for i in ids)} ids")
    os.remove(script)
    os.remove(texts)


if __name__ == "__main__":
    main()
