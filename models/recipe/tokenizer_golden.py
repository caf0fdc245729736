#!/usr/bin/python3
"""Golden tokenizer cases: texts and the ids SentencePiece produces (no BOS/EOS added).

Usage: tokenizer_golden.py TOKENIZER_MODEL TEST_TXT OUT_JSON
The ids of a document in the LM token stream are [1 (BOS)] + ids. "whole_document" is the first test
document in full; "prefix_k" the first ~300 characters (cut at a space) of test document k;
"edge_*" cases cover digits, punctuation, quotes and non-ASCII text (byte fallback). All texts are
already single-spaced without leading/trailing spaces, as the cleaned corpus is.
One-character texts, control characters and other normalizers are covered by sentencepiece_golden.py
(models/tokenizers/).
"""
import json
import sys

import sentencepiece as spm

EDGE = [
    "The jury said",
    "In 1961, $3,500 (about 12.5%) was paid -- on Jan. 2; really?",
    "\"Yes, your honor\", replied the man. 'Well' he said!",
    "caf\u00e9 na\u00efve \u201cquoted\u201d \u00a7 \u4e2d\u6587",
    "Hello world",
]


def main():
    tok, test_txt, out = sys.argv[1:4]
    sp = spm.SentencePieceProcessor(model_file=tok)
    docs = [l.rstrip("\n") for l in open(test_txt, encoding="ascii")]
    cases = [{"name": "whole_document_0", "text": docs[0]}]
    for k, d in enumerate(docs):
        cut = d[:300]
        cut = cut[:cut.rfind(" ")] if " " in cut else cut
        cases.append({"name": f"prefix_{k}", "text": cut})
    for k, t in enumerate(EDGE):
        cases.append({"name": f"edge_{k}", "text": t})
    for c in cases:
        c["ids"] = sp.encode(c["text"])
        assert sp.decode(c["ids"]) == c["text"], c["name"]
    doc = {"tokenizer": "../tokenizer.model", "add_bos": False, "add_eos": False, "bos_id": sp.bos_id(),
           "eos_id": sp.eos_id(), "unk_id": sp.unk_id(), "vocab_size": sp.get_piece_size(), "cases": cases}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"{out}: {len(cases)} cases, {sum(len(c['ids']) for c in cases)} ids")


if __name__ == "__main__":
    main()
