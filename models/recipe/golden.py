"""Golden decoding cases for the C# / ONNX Runtime tests.

cases.json format (paths relative to the golden/ folder):
{"model": "../model.onnx", "atol": A, "rtol": R,
 "num_layers": L, "num_key_value_heads": H, "head_dim": D, "vocab_size": V,
 "cases": [{"name": ..., "batch": B,
            "steps": [{"input_ids": [[...]], "attention_mask": [[...]], "position_ids": [[...]],
                       "past_length": P}, ...],
            "logits_file": "<name>.bin", "logits_shape": [B, S, V]}, ...]}
Steps run in order as ONE decoding sequence: the first step gets empty past tensors
[B, H, 0, D]; each later step feeds the previous step's present.N.key/value as
past_key_values.N.key/value. logits_file holds the LAST step's logits, float32
little-endian, row-major, computed by the PyTorch module (eager, not ONNX).
A value passes when |ort - expected| <= atol + rtol * |expected|.
"""
import json
import os

import numpy as np
import torch

PAD_ID = 0  # token id placed at left-padded positions (they are masked out)


def run_steps(model, steps, n_layers, n_kv, hd):
    b = len(steps[0]["input_ids"])
    past = [torch.zeros(b, n_kv, 0, hd) for _ in range(2 * n_layers)]
    with torch.no_grad():
        for st in steps:
            out = model(torch.tensor(st["input_ids"]), torch.tensor(st["attention_mask"]),
                        torch.tensor(st["position_ids"]), *past)
            logits, past = out[0], list(out[1:])
    return logits


def _plain_steps(rows, lengths):
    """rows: list of token lists (one per batch row); lengths: tokens fed per step."""
    steps, done = [], 0
    for n in lengths:
        steps.append({
            "input_ids": [r[done:done + n] for r in rows],
            "attention_mask": [[1] * (done + n) for _ in rows],
            "position_ids": [list(range(done, done + n)) for _ in rows],
            "past_length": done,
        })
        done += n
    return steps


def _left_pad_steps(rows, pads, prefill, decode):
    """Row r has pads[r] masked pad tokens on the left; HF-style positions (cumsum(mask) - 1, pads -> 1)."""
    width = prefill
    ids, am, pos = [], [], []
    for r, p in zip(rows, pads):
        ids.append([PAD_ID] * p + r[:width - p])
        am.append([0] * p + [1] * (width - p))
        pos.append([1] * p + list(range(width - p)))
    steps = [{"input_ids": ids, "attention_mask": am, "position_ids": pos, "past_length": 0}]
    for d in range(decode):
        steps.append({
            "input_ids": [[r[width - p + d]] for r, p in zip(rows, pads)],
            "attention_mask": [[0] * p + [1] * (width - p + d + 1) for p in pads],
            "position_ids": [[width - p + d] for p in pads],
            "past_length": width + d,
        })
    return steps


def case_specs(token_rows):
    """token_rows(n_rows, length, seed) -> list of token lists. Sizes differ from the traced ones (2, 5, 3)."""
    return [
        ("b1_prefill7", _plain_steps(token_rows(1, 7, 1), [7])),
        ("b2_prefill9_decode1x3", _plain_steps(token_rows(2, 12, 2), [9, 1, 1, 1])),
        ("b3_prefill4_chunk6_decode1", _plain_steps(token_rows(3, 11, 3), [4, 6, 1])),
        ("b2_leftpad2_prefill6_decode1x2", _left_pad_steps(token_rows(2, 8, 4), [2, 0], 6, 2)),
        ("b1_prefill20_chunk16", _plain_steps(token_rows(1, 36, 5), [20, 16])),
        ("b1_decode1_from_empty", _plain_steps(token_rows(1, 1, 6), [1])),
    ]


def write_golden(model, out_dir, vocab, n_layers, n_kv, hd, token_rows, atol, rtol):
    os.makedirs(out_dir, exist_ok=True)
    model.eval()
    cases = []
    for name, steps in case_specs(token_rows):
        logits = run_steps(model, steps, n_layers, n_kv, hd).float().contiguous()
        assert torch.isfinite(logits).all()
        fname = name + ".bin"
        logits.numpy().astype("<f4").tofile(os.path.join(out_dir, fname))
        cases.append({"name": name, "batch": len(steps[0]["input_ids"]), "steps": steps,
                      "logits_file": fname, "logits_shape": list(logits.shape)})
    doc = {"model": "../model.onnx", "atol": atol, "rtol": rtol, "num_layers": n_layers,
           "num_key_value_heads": n_kv, "head_dim": hd, "vocab_size": vocab, "cases": cases}
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    return doc


def random_rows(vocab, seed_base):
    def rows(n, length, seed):
        g = torch.Generator().manual_seed(seed_base * 100 + seed)
        return torch.randint(1, vocab, (n, length), generator=g).tolist()
    return rows
