#!/usr/bin/python3
"""Export the trained Llama checkpoint to ONNX (fp32, opset 17, KV cache) with golden cases and
the expected projection list.

Usage: export_llama.py TOKENIZER_MODEL CHECKPOINT TEST_TXT OUT_DIR
Writes OUT_DIR/model.onnx, OUT_DIR/expected_projections.json, OUT_DIR/golden/*.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden  # noqa: E402
import onnx_export  # noqa: E402
from common import load_stream  # noqa: E402
from evaluate import load_model  # noqa: E402

ATOL, RTOL = 1e-4, 1e-4


def main():
    tok_model, ckpt, test_txt, out = sys.argv[1:5]
    torch.set_num_threads(2)
    sp, model = load_model(tok_model, ckpt)
    cfg = model.cfg
    path = os.path.join(out, "model.onnx")
    m = onnx_export.export(model, path, cfg.vocab_size, cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim)
    onnx_export.write_projections(m, os.path.join(out, "expected_projections.json"),
                                  ["q", "k", "v", "o", "gate", "up", "down"], cfg.num_hidden_layers)
    print("ops:", onnx_export.op_histogram(m))
    stream = load_stream(sp, test_txt)

    def rows(n, length, seed):  # real text: slices of the test token stream
        return [stream[seed * 1000 + r * 200: seed * 1000 + r * 200 + length].tolist() for r in range(n)]

    golden.write_golden(model, os.path.join(out, "golden"), cfg.vocab_size, cfg.num_hidden_layers,
                        cfg.num_key_value_heads, cfg.head_dim, rows, ATOL, RTOL)
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
