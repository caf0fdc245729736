#!/usr/bin/python3
"""Train the Llama-architecture LM on the Brown training split.

Usage: train.py DATA_DIR TOKENIZER_MODEL WORK_DIR

Writes WORK_DIR/best.pt (state_dict of the best-validation checkpoint),
WORK_DIR/last.pt and WORK_DIR/train_log.json.
Deterministic: fixed seeds, fixed number of steps, 2 threads, fixed data order.
"""
import json
import math
import os
import sys
import time

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import load_stream, perplexity, WINDOW  # noqa: E402
from llama import LlamaForCausalLM  # noqa: E402
import specs  # noqa: E402

SEED = specs.spec()["seed"]
BATCH = 32          # sequences per step
SEQ = WINDOW        # 128 tokens per sequence (plus one for the shifted target)
STEPS = int(os.environ.get("TRAIN_STEPS", "640"))
PEAK_LR = 2e-3
MIN_LR = 2e-4
WARMUP = 40
WEIGHT_DECAY = 0.1
CLIP = 1.0
EVAL_AT = sorted({int(STEPS * f) for f in (0.5, 0.75, 0.9)} | {STEPS})


def lr_at(step):
    if step < WARMUP:
        return PEAK_LR * (step + 1) / WARMUP
    t = (step - WARMUP) / max(1, STEPS - WARMUP)
    return MIN_LR + 0.5 * (PEAK_LR - MIN_LR) * (1 + math.cos(math.pi * t))


def batches(stream, gen):
    """Epochs of shuffled non-overlapping 129-token chunks, each epoch at a random offset."""
    n = len(stream)
    epoch = 0
    while True:
        off = int(torch.randint(0, SEQ, (1,), generator=gen))
        starts = np.arange(off, n - SEQ - 1, SEQ)
        order = torch.randperm(len(starts), generator=gen).numpy()
        for i in range(0, len(order) - BATCH + 1, BATCH):
            idx = starts[order[i:i + BATCH]]
            yield epoch, torch.from_numpy(np.stack([stream[s:s + SEQ + 1] for s in idx]))
        epoch += 1


def main():
    data_dir, tok_model, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)
    sp = spm.SentencePieceProcessor(model_file=tok_model)
    train = load_stream(sp, os.path.join(data_dir, "train.txt"))
    valid = load_stream(sp, os.path.join(data_dir, "valid.txt"))
    print(f"train tokens {len(train)}, valid tokens {len(valid)}", flush=True)

    cfg = specs.config(sp.get_piece_size())
    model = LlamaForCausalLM(cfg)
    model.init_weights()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters {n_params}", flush=True)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=PEAK_LR, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(SEED)
    it = batches(train, gen)
    log = {"model": specs.name(), "convention": specs.spec()["convention"], "config": cfg.to_dict(), "parameters": n_params, "seed": SEED, "batch": BATCH, "seq": SEQ,
           "steps": STEPS, "peak_lr": PEAK_LR, "min_lr": MIN_LR, "warmup": WARMUP,
           "weight_decay": WEIGHT_DECAY, "clip": CLIP, "train_tokens_in_split": int(len(train)),
           "history": [], "evals": []}
    best = float("inf")
    t0 = time.time()
    am = torch.ones(BATCH, SEQ, dtype=torch.long)
    pos = torch.arange(SEQ).unsqueeze(0).expand(BATCH, SEQ)
    tokens_seen = 0
    for step in range(STEPS):
        model.train()
        epoch, xb = next(it)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits = model(xb[:, :-1], am, pos)[0]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        tokens_seen += BATCH * SEQ
        if step % 10 == 0 or step == STEPS - 1:
            el = time.time() - t0
            print(f"step {step} epoch {epoch} loss {loss.item():.4f} gnorm {gn.item():.2f} lr {lr_at(step):.2e} "
                  f"tokens {tokens_seen} elapsed {el:.0f}s", flush=True)
            log["history"].append({"step": step, "loss": round(loss.item(), 4), "tokens": tokens_seen,
                                   "elapsed_s": round(el, 1)})
        if step + 1 in EVAL_AT:
            ppl, n, _ = perplexity(model, valid)
            el = time.time() - t0
            print(f"== eval after step {step + 1}: valid ppl {ppl:.3f} ({n} scored tokens), elapsed {el:.0f}s",
                  flush=True)
            log["evals"].append({"steps": step + 1, "tokens_seen": tokens_seen, "valid_ppl": ppl,
                                 "elapsed_s": round(el, 1)})
            if ppl < best:
                best = ppl
                torch.save(model.state_dict(), os.path.join(work, "best.pt"))
                log["best"] = {"steps": step + 1, "tokens_seen": tokens_seen, "valid_ppl": ppl, "epoch": epoch}
    torch.save(model.state_dict(), os.path.join(work, "last.pt"))
    log["train_seconds"] = round(time.time() - t0, 1)
    log["torch"] = torch.__version__
    with open(os.path.join(work, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
    print("done", json.dumps(log["best"]), f"{log['train_seconds']}s", flush=True)


if __name__ == "__main__":
    main()
