#!/usr/bin/python3
"""nlp-corpus (npm package nlp-corpus@4.4.0, MIT) -> train/valid/test text for llama-mix.

Usage: prep_nlp_corpus.py CORPUS_DIR OUT_DIR

The package holds 100,000 English sentences from many registers (news, speeches, lyrics, chat, SMS,
reviews, old books, Unicode and emoji) in builds/doc-0.json .. doc-99.json, each a JSON list of strings.
Sentences are read in file order (doc-0, doc-1, ...); a line break inside a sentence becomes a space and
surrounding whitespace is stripped, so each sentence is one line; everything else (Unicode punctuation,
NBSP and other spaces, tabs, C1 control characters) is kept as it is: the tokenizer's nmt_nfkc
normalizer deals with it. Sentence number i goes to TEST if i % 50 == 0, VALID if i % 50 == 1, else TRAIN.
Writes OUT_DIR/{train,valid,test}.txt (UTF-8, one sentence per line) and split.json (the counts).
"""
import json
import os
import re
import sys


def main():
    src, out = sys.argv[1:3]
    os.makedirs(out, exist_ok=True)
    splits = {"train": [], "valid": [], "test": []}
    i = 0
    for d in range(100):
        with open(os.path.join(src, "builds", f"doc-{d}.json"), encoding="utf-8") as f:
            for s in json.load(f):
                s = re.sub(r"\r\n|\r|\n", " ", s).strip()
                if not s:
                    continue
                split = "test" if i % 50 == 0 else "valid" if i % 50 == 1 else "train"
                splits[split].append(s)
                i += 1
    for k, lines in splits.items():
        with open(os.path.join(out, k + ".txt"), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
    counts = {k: len(v) for k, v in splits.items()}
    with open(os.path.join(out, "split.json"), "w") as f:
        json.dump({"source": "nlp-corpus@4.4.0", "rule": "sentence i: test if i%50==0, valid if i%50==1",
                   "sentences": counts}, f, indent=1)
    print(counts)


if __name__ == "__main__":
    main()
