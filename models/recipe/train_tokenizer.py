#!/usr/bin/python3
"""Train the SentencePiece BPE tokenizer on the training split (settings of llama-brown; llama-mix: specs.py).

Usage: train_tokenizer.py TRAIN_TXT OUT_PREFIX   (writes OUT_PREFIX.model/.vocab)

Settings: BPE, vocab 4096, byte_fallback, normalization_rule_name=identity (the
text is pre-cleaned ASCII, so no NFKC; C# tokenizers must reproduce the ids),
add_dummy_prefix (default), unk=0, bos=1, eos=2, no pad. Every training line
(one document, up to ~15k characters) is used whole: max_sentence_length is
raised and no sampling/shuffling happens (input_sentence_size=0).
"""
import os
import sys
import sentencepiece as spm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import specs  # noqa: E402
from sentencepiece import sentencepiece_model_pb2 as sp_model

train_txt, prefix = sys.argv[1], sys.argv[2]
spm.SentencePieceTrainer.train(
    input=train_txt,
    model_prefix=prefix,
    model_type="bpe",
    vocab_size=specs.spec()["tokenizer"]["vocab_size"],
    byte_fallback=True,
    character_coverage=specs.spec()["tokenizer"].get("character_coverage", 1.0),
    normalization_rule_name=specs.spec()["tokenizer"]["normalization_rule_name"],
    add_dummy_prefix=True,
    remove_extra_whitespaces=True,
    split_digits=False,
    max_sentence_length=1 << 20,
    input_sentence_size=0,
    shuffle_input_sentence=False,
    num_threads=1,
    unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
    minloglevel=1,
)
# The trainer records the input path and output prefix in the model; make them path-independent so the
# file is byte-identical wherever the recipe runs.
proto = sp_model.ModelProto()
with open(prefix + ".model", "rb") as f:
    proto.ParseFromString(f.read())
del proto.trainer_spec.input[:]
proto.trainer_spec.input.append("train.txt")
proto.trainer_spec.model_prefix = "tokenizer"
with open(prefix + ".model", "wb") as f:
    f.write(proto.SerializeToString())
sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
print("vocab", sp.get_piece_size(), "sample", sp.encode("The jury said it was \"fine\".", out_type=str))
