"""Export a decoder with Optimum-style KV-cache I/O using torch.onnx.export (TorchScript, opset 17),
derive the expected projection list, and check the file with onnx.checker / shape inference."""
import collections
import json
import re

import onnx
import torch

OPSET = 17
TRACE_BATCH, TRACE_SEQ, TRACE_PAST = 2, 5, 3


def io_names(n_layers):
    inputs = ["input_ids", "attention_mask", "position_ids"]
    outputs = ["logits"]
    for i in range(n_layers):
        inputs += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        outputs += [f"present.{i}.key", f"present.{i}.value"]
    return inputs, outputs


def dynamic_axes(n_layers):
    ax = {
        "input_ids": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    for i in range(n_layers):
        for kv in ("key", "value"):
            ax[f"past_key_values.{i}.{kv}"] = {0: "batch_size", 2: "past_sequence_length"}
            ax[f"present.{i}.{kv}"] = {0: "batch_size", 2: "total_sequence_length"}
    return ax


def dummy_inputs(vocab, n_layers, n_kv, head_dim, batch, seq, past, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    am = torch.ones(batch, past + seq, dtype=torch.long)
    pos = torch.arange(past, past + seq).unsqueeze(0).expand(batch, seq).contiguous()
    pasts = [torch.randn(batch, n_kv, past, head_dim, generator=g) for _ in range(2 * n_layers)]
    return (ids, am, pos, *pasts)


def export(model, path, vocab, n_layers, n_kv, head_dim):
    model.eval()
    args = dummy_inputs(vocab, n_layers, n_kv, head_dim, TRACE_BATCH, TRACE_SEQ, TRACE_PAST)
    inputs, outputs = io_names(n_layers)
    with torch.no_grad():
        torch.onnx.export(model, args, path, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic_axes(n_layers), opset_version=OPSET,
                          do_constant_folding=True, export_params=True)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    return m


def op_histogram(m):
    return dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items()))


KIND_BY_MODULE = {
    "q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o",
    "gate_proj": "gate", "up_proj": "up", "down_proj": "down",
    "qkv_proj": "qkv", "gate_up_proj": "gate_up",
    # GPT-2 module names
    "attn/c_attn": "qkv", "attn/c_proj": "o", "mlp/c_fc": "up", "mlp/c_proj": "down",
}
LAYER_RE = re.compile(r"/(?:layers|h)\.(\d+)/")


def expected_projections(m):
    """Every MatMul/Gemm that applies a projection weight, from the module scope in its node name.

    torch 1.13 names a node after the module path it was created in, e.g.
    /model/layers.0/self_attn/q_proj/MatMul or /transformer/h.1/attn/c_attn/Gemm.
    The LM head is the MatMul/Gemm under /lm_head/ or, for heads written as
    F.linear(x, embedding_weight) outside any module, the top-level MatMul that
    produces the graph output 'logits' (checked to read an initializer).
    Attention-score MatMuls (inputs are activations only) are excluded.
    """
    inits = {i.name for i in m.graph.initializer}
    const_nodes = {o for n in m.graph.node if n.op_type == "Constant" for o in n.output}
    weights = inits | const_nodes
    res = []
    for n in m.graph.node:
        if n.op_type not in ("MatMul", "Gemm"):
            continue
        name = n.name
        has_w = n.input[1] in weights
        kind = None
        for mod, k in KIND_BY_MODULE.items():
            if f"/{mod}/" in name:
                kind = k
        if "/lm_head/" in name:
            kind = "lm_head"
        if kind is None and "logits" in n.output:
            kind = "lm_head"
        if kind is None:
            assert not has_w, f"unclassified weight MatMul {name}"
            continue
        assert has_w, f"projection {name} does not read an initializer"
        layer = None
        if kind != "lm_head":
            mm = LAYER_RE.search(name)
            assert mm, name
            layer = int(mm.group(1))
        res.append({"node": name, "kind": kind, "layer": layer})
    return res


def write_projections(m, path, expect_per_layer, n_layers):
    proj = expected_projections(m)
    kinds = collections.Counter((p["layer"], p["kind"]) for p in proj)
    for layer in range(n_layers):
        for k in expect_per_layer:
            assert kinds[(layer, k)] == 1, (layer, k, kinds)
    assert kinds[(None, "lm_head")] == 1, kinds
    assert len(proj) == n_layers * len(expect_per_layer) + 1, (len(proj), kinds)
    with open(path, "w") as f:
        json.dump(proj, f, indent=1)
    return proj
