#!/usr/bin/python3
"""Golden SentencePiece cases: small tokenizers trained here, and the ids the Python library gives.

Usage: sentencepiece_golden.py TRAIN_TXT OUT_DIR [EXTRA_TOKENIZER NAME]...

Trains four small SentencePiece models on TRAIN_TXT (the llama-mix training text: mixed English with
Unicode punctuation, accents, odd whitespace) that between them cover the normalizer and model options
C# must reproduce, and writes OUT_DIR/<name>.model plus OUT_DIR/<name>.cases.json for each of them and
for every EXTRA_TOKENIZER given (the reference models' own tokenizers):

  nmt-nfkc-unigram   unigram, nmt_nfkc, byte fallback
  identity-bpe       BPE, identity, byte fallback, user-defined symbols, remove_extra_whitespaces off
  nfkc-cf-bpe        BPE, nmt_nfkc_cf (case folding), no byte fallback (unknown runs), no dummy prefix
  user-rules-bpe     BPE, a user-defined normalization TSV (compiled into precompiled_charsmap), nfkc base

cases.json: {"tokenizer": "<name>.model", "sentencepiece": version, "normalizer": name,
"cases": [{"name", "text", "ids", "pieces", "decoded"}]} (tokenizer: relative to the cases file): ids = sp.encode(text) (no BOS/EOS),
pieces = sp.encode(text, out_type=str) (an unknown piece is its text), decoded = sp.decode(ids).
"""
import json
import os
import sys

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_model

EDGE = [
    ("empty", ""),
    ("one_letter", "a"),
    ("one_dot", "."),
    ("space_letter", " x"),
    ("only_spaces", "   "),
    ("newlines", "first line\nsecond line\n\nfourth after a blank\n"),
    ("crlf", "windows\r\nline\rend"),
    ("tabs", "col1\tcol2\t\tcol4\t"),
    ("space_runs", "  two  spaces   three    four     five  "),
    ("nbsp_and_spaces", "no\u00a0break, en\u2002space, em\u2003space, thin\u2009space, ideographic\u3000space"),
    ("full_width", "\uff26\uff55\uff4c\uff4c\uff0d\uff57\uff49\uff44\uff54\uff48 \uff21\uff22\uff23 \uff11\uff12\uff13\uff01"),
    ("ligatures", "\ufb01nance \ufb02ow \ufb00ort o\ufb03ce \u0132sselmeer"),
    ("combining", "cafe\u0301 vs caf\u00e9, nai\u0308ve vs na\u00efve, A\u030a vs \u00c5, \u1e9b\u0323"),
    ("emoji", "ok \U0001f44d\U0001f3fd great \U0001f468\u200d\U0001f469\u200d\U0001f467 family \u2764\ufe0f \U0001f1e9\U0001f1ea"),
    ("controls", "bell\x07 null\x00 esc\x1b del\x7f nel\x85 zwsp\u200b bom\ufeff soft\u00adhyphen"),
    ("c1_quotes", "\x93smart\x94 \x96 dash \x97 em"),
    ("byte_fallback", "\u4e2d\u6587 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u10d0\u10d1\u10d2 \U0001d54f\U0001d552"),
    ("roman_and_symbols", "\u2160 \u2161 \u2167 \u00bd \u2153 x\u00b2 \u2122 \u00a9 \u2116 \u212b \u2126"),
    ("punctuation", "\u201cquoted\u201d \u2018single\u2019 \u2026 \u2013 \u2014 \u00ab\u00bb \u2022 \u00a7 \u00b6"),
    ("digits", "In 1961, $3,500 (about 12.5%) was paid -- on Jan. 2; really? 0xFF 1e-9"),
    ("case", "MiXeD CaSe \u00c4\u00d6\u00dc \u00df \u0130stanbul \u03a3\u03b9\u03c3\u03c5\u03c6\u03bf\u03c2"),
    ("user_symbols", "a<sep>b @@ c<sep><sep>@@@"),
    ("leading_trailing", "\u00a0\t leading and trailing \t\u00a0"),
    ("replacement", "bad \ufffd char and \u2047 marks"),
]


def whole_documents(train_txt, count=3, size=4000):
    """A few several-KB documents: consecutive lines joined with newlines, as a file is read whole."""
    lines = [l.rstrip("\n") for l in open(train_txt, encoding="utf-8")]
    docs, start = [], 1000
    for k in range(count):
        doc, i = [], start
        while sum(len(x) + 1 for x in doc) < size:
            doc.append(lines[i])
            i += 1
        docs.append((f"document_{k}", "\n".join(doc) + "\n"))
        start = i + 5000
    return docs


def train(train_txt, out_dir, name, **kw):
    prefix = os.path.join(out_dir, name)
    # A fixed 20,000-line slice: small, fast, deterministic.
    sample = os.path.join(out_dir, ".train-sample.txt")
    with open(train_txt, encoding="utf-8") as f, open(sample, "w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            if i >= 20000:
                break
            g.write(line)
    args = dict(input=sample, model_prefix=prefix, vocab_size=800, character_coverage=0.9995,
                input_sentence_size=0, shuffle_input_sentence=False, num_threads=1, minloglevel=1,
                unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    args.update(kw)
    spm.SentencePieceTrainer.train(**args)
    os.remove(sample)
    proto = sp_model.ModelProto()
    with open(prefix + ".model", "rb") as f:
        proto.ParseFromString(f.read())
    del proto.trainer_spec.input[:]
    proto.trainer_spec.input.append("train.txt")
    proto.trainer_spec.model_prefix = name
    with open(prefix + ".model", "wb") as f:
        f.write(proto.SerializeToString())
    os.remove(prefix + ".vocab")
    return prefix + ".model"


def write_cases(model_path, out_json, docs):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    proto = sp_model.ModelProto()
    with open(model_path, "rb") as f:
        proto.ParseFromString(f.read())
    cases = []
    for name, text in EDGE + docs:
        ids = sp.encode(text)
        cases.append({"name": name, "text": text, "ids": ids, "pieces": sp.encode(text, out_type=str),
                      "decoded": sp.decode(ids)})
    doc = {"tokenizer": os.path.relpath(model_path, os.path.dirname(out_json)), "sentencepiece": spm.__version__,
           "model_type": sp_model.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type),
           "normalizer": proto.normalizer_spec.name, "byte_fallback": proto.trainer_spec.byte_fallback,
           "cases": cases}
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"{out_json}: {len(cases)} cases, {sum(len(c['ids']) for c in cases)} ids")


def main():
    train_txt, out = sys.argv[1:3]
    extra = sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    docs = whole_documents(train_txt)
    rules = os.path.join(out, ".rules.tsv")
    # A user rule table: NFKC-like basics plus project-specific rewrites (hex code points, space separated).
    with open(rules, "w") as f:
        f.write("41\t61\n")                 # A -> a
        f.write("2019\t27\n")               # right single quote -> '
        f.write("201C\t22\n201D\t22\n")     # curly double quotes -> "
        f.write("FB01\t66 69\n")            # fi ligature -> f i
        f.write("9\t20\n")                  # tab -> space
        f.write("A0\t20\n")                 # NBSP -> space
        f.write("2026\t2E 2E 2E\n")         # ellipsis -> ...
    models = [
        ("nmt-nfkc-unigram", dict(model_type="unigram", normalization_rule_name="nmt_nfkc", byte_fallback=True)),
        ("identity-bpe", dict(model_type="bpe", normalization_rule_name="identity", byte_fallback=True,
                              remove_extra_whitespaces=False, user_defined_symbols=["<sep>", "@@"])),
        ("nfkc-cf-bpe", dict(model_type="bpe", normalization_rule_name="nmt_nfkc_cf", byte_fallback=False,
                             add_dummy_prefix=False)),
        ("user-rules-bpe", dict(model_type="bpe", normalization_rule_tsv=rules, byte_fallback=True)),
    ]
    for name, kw in models:
        path = train(train_txt, out, name, **kw)
        write_cases(path, os.path.join(out, name + ".cases.json"), docs)
    os.remove(rules)
    for i in range(0, len(extra), 2):
        write_cases(extra[i], os.path.join(out, extra[i + 1] + ".cases.json"), docs)


if __name__ == "__main__":
    main()
