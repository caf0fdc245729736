#!/usr/bin/python3
"""Perplexity (test, valid), unigram baseline and a greedy sample for the trained model.

Usage: evaluate.py DATA_DIR TOKENIZER_MODEL CHECKPOINT OUT_JSON
DATA_DIR holds train.txt (for the unigram counts), valid.txt and test.txt.
"""
import json
import os
import sys
import time

import sentencepiece as spm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import WINDOW, load_stream, perplexity, unigram_perplexity  # noqa: E402
from llama import LlamaForCausalLM  # noqa: E402
import specs  # noqa: E402

PROMPT = specs.spec()["prompt"]
SAMPLE_TOKENS = 48


def load_model(tok_model, ckpt):
    sp = spm.SentencePieceProcessor(model_file=tok_model)
    model = LlamaForCausalLM(specs.config(sp.get_piece_size()))
    model.load_state_dict(torch.load(ckpt, map_location="cpu"))
    model.eval()
    return sp, model


@torch.no_grad()
def greedy(model, sp, prompt, n_new):
    """Greedy decoding with the KV cache, checked against full recomputation."""
    bos = [sp.bos_id()] if specs.spec()["convention"] == "lines" else []
    ids = bos + sp.encode(prompt)
    cfg = model.cfg
    past = [torch.zeros(1, cfg.num_key_value_heads, 0, cfg.head_dim) for _ in range(2 * cfg.num_hidden_layers)]
    x, out_ids = ids, list(ids)
    for _ in range(n_new):
        p = len(out_ids) - len(x)
        res = model(torch.tensor([x]), torch.ones(1, p + len(x), dtype=torch.long),
                    torch.arange(p, p + len(x)).unsqueeze(0), *past)
        nxt = int(res[0][0, -1].argmax())
        past = list(res[1:])
        out_ids.append(nxt)
        x = [nxt]
        if nxt == sp.eos_id() or len(out_ids) >= WINDOW:
            break
    full = model(torch.tensor([out_ids[:-1]]), torch.ones(1, len(out_ids) - 1, dtype=torch.long),
                 torch.arange(len(out_ids) - 1).unsqueeze(0))[0][0].argmax(-1).tolist()
    assert full[len(ids) - 1:] == out_ids[len(ids):], "KV-cache decoding disagrees with full recomputation"
    return out_ids, sp.decode(out_ids[len(bos):])


def main():
    data_dir, tok_model, ckpt, out_json = sys.argv[1:5]
    torch.set_num_threads(2)
    sp, model = load_model(tok_model, ckpt)
    t0 = time.time()
    streams = {k: load_stream(sp, os.path.join(data_dir, k + ".txt")) for k in ("train", "valid", "test")}
    res = {"window": WINDOW, "stream_tokens": {k: int(len(v)) for k, v in streams.items()}}
    for k in ("test", "valid"):
        ppl, n, nll = perplexity(model, streams[k])
        uni, n2 = unigram_perplexity(streams["train"], streams[k], sp.get_piece_size())
        assert n == n2
        res[k] = {"ppl": ppl, "scored_tokens": n, "mean_nll": nll / n, "unigram_ppl": uni,
                  "documents": sum(1 for _ in open(os.path.join(data_dir, k + ".txt"), encoding="utf-8"))}
        print(f"{k}: ppl {ppl:.3f} over {n} scored tokens; unigram ppl {uni:.3f}", flush=True)
    ids, text = greedy(model, sp, PROMPT, SAMPLE_TOKENS)
    res["sample"] = {"prompt": PROMPT, "new_tokens": len(ids) - len(sp.encode(PROMPT)) - (specs.spec()["convention"] == "lines"), "ids": ids, "text": text}
    res["parameters"] = sum(p.numel() for p in model.parameters())
    res["eval_seconds"] = round(time.time() - t0, 1)
    print("sample:", text)
    with open(out_json, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
