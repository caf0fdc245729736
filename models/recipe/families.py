#!/usr/bin/python3
"""Small random-weight decoders reproducing the exported graph patterns of other model families.

Usage: families.py OUT_DIR   (writes OUT_DIR/<family>/{model.onnx, expected_projections.json, golden/})

Each module mirrors the structure and module names of the Hugging Face implementation of that family,
so that torch.onnx.export (TorchScript, opset 17) produces the same operator pattern and node names:
  qwen2    - Llama layout with biases on q/k/v only, RMSNorm, RoPE (theta 1e6), GQA, SwiGLU, tied lm_head module
  gpt2     - transformer.wte/wpe (learned positions), ln_1/ln_2/ln_f LayerNorm, Conv1D = torch.addmm
             (Gemm, transB=0, between Reshapes), fused c_attn split into q,k,v, gelu_new written out,
             lm_head module tied to wte
  phi3     - fused qkv_proj sliced by index ranges, fused gate_up_proj .chunk(2), SiLU, RMSNorm, RoPE, GQA
  gemma    - GeGLU (tanh-approximate gelu on gate times up), RMSNorm with (1 + weight), embeddings scaled by
             sqrt(hidden), head_dim independent of hidden (q_proj 64->128), multi-query attention (1 kv head),
             lm_head = F.linear(x, embed_tokens.weight) outside any module
  linear2d - Llama-like decoder whose every projection is nn.Linear (with bias) applied to a 2-D view
             x.reshape(-1, d), which exports as Gemm with transB=1
All share the KV-cache I/O naming of onnx_export.py. Weights are seeded random (deterministic).
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama import (DecoderStack, LlamaConfig, LlamaForCausalLM, RMSNorm, apply_rope,  # noqa: E402
                   attention_core, causal_mask)
import golden  # noqa: E402
import onnx_export  # noqa: E402

VOCAB = 512
HIDDEN = 64
LAYERS = 2


# ---------------------------------------------------------------- Qwen2
def make_qwen2():
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=172, num_hidden_layers=LAYERS,
                      num_attention_heads=4, num_key_value_heads=2, rope_theta=1e6, rms_norm_eps=1e-6)
    return LlamaForCausalLM(cfg, qkv_bias=True, tie_word_embeddings=True), cfg.num_key_value_heads, cfg.head_dim


# ---------------------------------------------------------------- GPT-2
class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: weight [nx, nf], y = addmm(bias, x2d, weight)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPT2Attention(nn.Module):
    def __init__(self, h, nh):
        super().__init__()
        self.nh, self.hd, self.split_size = nh, h // nh, h
        self.c_attn = Conv1D(3 * h, h)
        self.c_proj = Conv1D(h, h)

    def _split_heads(self, t):
        return t.view(t.size()[:-1] + (self.nh, self.hd)).permute(0, 2, 1, 3)

    def forward(self, x, mask, past_k, past_v):
        q, k, v = self.c_attn(x).split(self.split_size, dim=2)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        if past_k is not None:
            k = torch.cat((past_k, k), dim=-2)
            v = torch.cat((past_v, v), dim=-2)
        w = torch.matmul(q, k.transpose(-1, -2)) / torch.full([], v.size(-1) ** 0.5, dtype=q.dtype)
        w = torch.where(mask, w, torch.tensor(torch.finfo(torch.float32).min))
        w = torch.softmax(w, dim=-1)
        o = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous()
        o = o.view(o.size()[:-2] + (self.nh * self.hd,))
        return self.c_proj(o), k, v


class GPT2MLP(nn.Module):
    def __init__(self, h, inner):
        super().__init__()
        self.c_fc = Conv1D(inner, h)
        self.c_proj = Conv1D(h, inner)

    def forward(self, x):
        return self.c_proj(gelu_new(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, h, nh, inner):
        super().__init__()
        self.ln_1 = nn.LayerNorm(h, eps=1e-5)
        self.attn = GPT2Attention(h, nh)
        self.ln_2 = nn.LayerNorm(h, eps=1e-5)
        self.mlp = GPT2MLP(h, inner)

    def forward(self, x, mask, pk, pv):
        a, k, v = self.attn(self.ln_1(x), mask, pk, pv)
        x = x + a
        return x + self.mlp(self.ln_2(x)), k, v


class GPT2Model(nn.Module):
    def __init__(self, vocab, h, nh, inner, n_layers, n_pos):
        super().__init__()
        self.wte = nn.Embedding(vocab, h)
        self.wpe = nn.Embedding(n_pos, h)
        self.h = nn.ModuleList([GPT2Block(h, nh, inner) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(h, eps=1e-5)

    def forward(self, input_ids, attention_mask, position_ids, past):
        x = self.wte(input_ids) + self.wpe(position_ids)
        mask = causal_mask(attention_mask, input_ids)
        presents = []
        for i, block in enumerate(self.h):
            x, k, v = block(x, mask, past[2 * i] if past else None, past[2 * i + 1] if past else None)
            presents += [k, v]
        return self.ln_f(x), presents


class GPT2LMHeadModel(nn.Module):
    def __init__(self, vocab=VOCAB, h=HIDDEN, nh=4, inner=128, n_layers=LAYERS, n_pos=128):
        super().__init__()
        self.transformer = GPT2Model(vocab, h, nh, inner, n_layers, n_pos)
        self.lm_head = nn.Linear(h, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied

    def forward(self, input_ids, attention_mask, position_ids, *past):
        x, presents = self.transformer(input_ids, attention_mask, position_ids, past)
        return (self.lm_head(x), *presents)


def make_gpt2():
    return GPT2LMHeadModel(), 4, HIDDEN // 4


# ---------------------------------------------------------------- Phi-3
class Phi3Attention(nn.Module):
    def __init__(self, h, nh, nkv):
        super().__init__()
        self.nh, self.nkv, self.hd = nh, nkv, h // nh
        op_size = nh * self.hd + 2 * (nkv * self.hd)
        self.qkv_proj = nn.Linear(h, op_size, bias=False)
        self.o_proj = nn.Linear(nh * self.hd, h, bias=False)

    def forward(self, x, cos, sin, mask, past_k, past_v):
        b, s, _ = x.shape
        qkv = self.qkv_proj(x)
        query_pos = self.nh * self.hd
        q = qkv[..., :query_pos]
        k = qkv[..., query_pos:query_pos + self.nkv * self.hd]
        v = qkv[..., query_pos + self.nkv * self.hd:]
        q = q.view(b, s, self.nh, self.hd).transpose(1, 2)
        k = k.view(b, s, self.nkv, self.hd).transpose(1, 2)
        v = v.view(b, s, self.nkv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, k, cos, sin)
        if past_k is not None:
            k = torch.cat((past_k, k), dim=2)
            v = torch.cat((past_v, v), dim=2)
        o = attention_core(q, k, v, mask, self.nh // self.nkv, 1.0 / math.sqrt(self.hd))
        return self.o_proj(o), k, v


class Phi3MLP(nn.Module):
    def __init__(self, h, inner):
        super().__init__()
        self.gate_up_proj = nn.Linear(h, 2 * inner, bias=False)
        self.down_proj = nn.Linear(inner, h, bias=False)

    def forward(self, x):
        up_states = self.gate_up_proj(x)
        gate, up_states = up_states.chunk(2, dim=-1)
        return self.down_proj(up_states * F.silu(gate))


class Phi3DecoderLayer(nn.Module):
    def __init__(self, h, nh, nkv, inner):
        super().__init__()
        self.self_attn = Phi3Attention(h, nh, nkv)
        self.mlp = Phi3MLP(h, inner)
        self.input_layernorm = RMSNorm(h, 1e-5)
        self.post_attention_layernorm = RMSNorm(h, 1e-5)

    def forward(self, x, cos, sin, mask, pk, pv):
        a, k, v = self.self_attn(self.input_layernorm(x), cos, sin, mask, pk, pv)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), k, v


class Phi3ForCausalLM(nn.Module):
    def __init__(self, vocab=VOCAB, h=HIDDEN, nh=4, nkv=2, inner=128, n_layers=LAYERS, theta=10000.0):
        super().__init__()
        self.model = DecoderStack(vocab, h, [Phi3DecoderLayer(h, nh, nkv, inner) for _ in range(n_layers)],
                                  RMSNorm(h, 1e-5), h // nh, theta)
        self.lm_head = nn.Linear(h, vocab, bias=False)

    def forward(self, input_ids, attention_mask, position_ids, *past):
        x, presents = self.model(input_ids, attention_mask, position_ids, past)
        return (self.lm_head(x), *presents)


def make_phi3():
    return Phi3ForCausalLM(), 2, HIDDEN // 4


# ---------------------------------------------------------------- Gemma
class GemmaAttention(nn.Module):
    def __init__(self, h, nh, nkv, hd):
        super().__init__()
        self.nh, self.nkv, self.hd = nh, nkv, hd
        self.q_proj = nn.Linear(h, nh * hd, bias=False)
        self.k_proj = nn.Linear(h, nkv * hd, bias=False)
        self.v_proj = nn.Linear(h, nkv * hd, bias=False)
        self.o_proj = nn.Linear(nh * hd, h, bias=False)

    def forward(self, x, cos, sin, mask, past_k, past_v):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, k, cos, sin)
        if past_k is not None:
            k = torch.cat((past_k, k), dim=2)
            v = torch.cat((past_v, v), dim=2)
        o = attention_core(q, k, v, mask, self.nh // self.nkv, self.hd ** -0.5)
        return self.o_proj(o), k, v


class GemmaMLP(nn.Module):
    def __init__(self, h, inner):
        super().__init__()
        self.gate_proj = nn.Linear(h, inner, bias=False)
        self.up_proj = nn.Linear(h, inner, bias=False)
        self.down_proj = nn.Linear(inner, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class GemmaDecoderLayer(nn.Module):
    def __init__(self, h, nh, nkv, hd, inner):
        super().__init__()
        self.self_attn = GemmaAttention(h, nh, nkv, hd)
        self.mlp = GemmaMLP(h, inner)
        self.input_layernorm = RMSNorm(h, 1e-6, plus_one=True)
        self.post_attention_layernorm = RMSNorm(h, 1e-6, plus_one=True)

    def forward(self, x, cos, sin, mask, pk, pv):
        a, k, v = self.self_attn(self.input_layernorm(x), cos, sin, mask, pk, pv)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), k, v


class GemmaForCausalLM(nn.Module):
    def __init__(self, vocab=VOCAB, h=HIDDEN, nh=4, nkv=1, hd=32, inner=160, n_layers=LAYERS, theta=10000.0):
        super().__init__()
        self.model = DecoderStack(vocab, h, [GemmaDecoderLayer(h, nh, nkv, hd, inner) for _ in range(n_layers)],
                                  RMSNorm(h, 1e-6, plus_one=True), hd, theta, embed_scale=h ** 0.5)

    def forward(self, input_ids, attention_mask, position_ids, *past):
        x, presents = self.model(input_ids, attention_mask, position_ids, past)
        return (F.linear(x, self.model.embed_tokens.weight), *presents)  # tied head outside any module


def make_gemma():
    return GemmaForCausalLM(), 1, 32


# ---------------------------------------------------------------- linear2d
class Linear2D(nn.Linear):
    """nn.Linear applied to a 2-D view: [b, s, d] -> [b*s, d] -> Gemm(transB=1) -> [b, s, out]."""

    def forward(self, x):
        y = super().forward(x.reshape(-1, x.shape[-1]))
        return y.view(x.shape[0], x.shape[1], -1)


class Linear2DAttention(nn.Module):
    def __init__(self, h, nh, nkv):
        super().__init__()
        self.nh, self.nkv, self.hd = nh, nkv, h // nh
        self.q_proj = Linear2D(h, nh * self.hd)
        self.k_proj = Linear2D(h, nkv * self.hd)
        self.v_proj = Linear2D(h, nkv * self.hd)
        self.o_proj = Linear2D(nh * self.hd, h)

    def forward(self, x, cos, sin, mask, past_k, past_v):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, k, cos, sin)
        if past_k is not None:
            k = torch.cat((past_k, k), dim=2)
            v = torch.cat((past_v, v), dim=2)
        o = attention_core(q, k, v, mask, self.nh // self.nkv, 1.0 / math.sqrt(self.hd))
        return self.o_proj(o), k, v


class Linear2DMLP(nn.Module):
    def __init__(self, h, inner):
        super().__init__()
        self.gate_proj = Linear2D(h, inner)
        self.up_proj = Linear2D(h, inner)
        self.down_proj = Linear2D(inner, h)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Linear2DLayer(nn.Module):
    def __init__(self, h, nh, nkv, inner):
        super().__init__()
        self.self_attn = Linear2DAttention(h, nh, nkv)
        self.mlp = Linear2DMLP(h, inner)
        self.input_layernorm = RMSNorm(h, 1e-5)
        self.post_attention_layernorm = RMSNorm(h, 1e-5)

    def forward(self, x, cos, sin, mask, pk, pv):
        a, k, v = self.self_attn(self.input_layernorm(x), cos, sin, mask, pk, pv)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), k, v


class Linear2DForCausalLM(nn.Module):
    def __init__(self, vocab=VOCAB, h=HIDDEN, nh=4, nkv=2, inner=128, n_layers=LAYERS, theta=10000.0):
        super().__init__()
        self.model = DecoderStack(vocab, h, [Linear2DLayer(h, nh, nkv, inner) for _ in range(n_layers)],
                                  RMSNorm(h, 1e-5), h // nh, theta)
        self.lm_head = Linear2D(h, vocab)

    def forward(self, input_ids, attention_mask, position_ids, *past):
        x, presents = self.model(input_ids, attention_mask, position_ids, past)
        return (self.lm_head(x), *presents)


def make_linear2d():
    return Linear2DForCausalLM(), 2, HIDDEN // 4


# ---------------------------------------------------------------- driver
FAMILIES = {
    # name: (factory, projection kinds expected once per layer)
    "qwen2": (make_qwen2, ["q", "k", "v", "o", "gate", "up", "down"]),
    "gpt2": (make_gpt2, ["qkv", "o", "up", "down"]),
    "phi3": (make_phi3, ["qkv", "o", "gate_up", "down"]),
    "gemma": (make_gemma, ["q", "k", "v", "o", "gate", "up", "down"]),
    "linear2d": (make_linear2d, ["q", "k", "v", "o", "gate", "up", "down"]),
}
ATOL, RTOL = 1e-4, 1e-4  # ORT vs PyTorch tolerance on logits (see models/README.md for measured diffs)
SEEDS = {"qwen2": 11, "gpt2": 12, "phi3": 13, "gemma": 14, "linear2d": 15}


def build(name):
    """Deterministic random model: default init, then norms and biases perturbed so that every parameter
    visibly matters (a converter that dropped a norm weight or a bias would fail the golden tests)."""
    torch.manual_seed(SEEDS[name])
    model, n_kv, hd = FAMILIES[name][0]()
    with torch.no_grad():
        for mname, mod in model.named_modules():
            if isinstance(mod, RMSNorm):
                mod.weight.copy_((0.0 if mod.plus_one else 1.0) + 0.1 * torch.randn_like(mod.weight))
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.copy_(1.0 + 0.1 * torch.randn_like(mod.weight))
                mod.bias.copy_(0.1 * torch.randn_like(mod.bias))
            elif isinstance(mod, Conv1D):
                mod.weight.normal_(0.0, 1.0 / math.sqrt(mod.weight.shape[0]))
                mod.bias.copy_(0.1 * torch.randn_like(mod.bias))
            elif isinstance(mod, nn.Linear) and mod.bias is not None:
                mod.bias.copy_(0.1 * torch.randn_like(mod.bias))
            elif isinstance(mod, nn.Embedding):
                mod.weight.normal_(0.0, 0.5)
    model.eval()
    return model, n_kv, hd


def n_layers_of(model):
    return len(model.transformer.h) if hasattr(model, "transformer") else len(model.model.layers)


def main():
    out = sys.argv[1]
    for name, (_, kinds) in FAMILIES.items():
        model, n_kv, hd = build(name)
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        nl = n_layers_of(model)
        path = os.path.join(d, "model.onnx")
        m = onnx_export.export(model, path, VOCAB, nl, n_kv, hd)
        proj = onnx_export.write_projections(m, os.path.join(d, "expected_projections.json"), kinds, nl)
        golden.write_golden(model, os.path.join(d, "golden"), VOCAB, nl, n_kv, hd,
                            golden.random_rows(VOCAB, SEEDS[name]), atol=ATOL, rtol=RTOL)
        print(f"{name}: {os.path.getsize(path)} bytes, {sum(p.numel() for p in model.parameters())} params, "
              f"{len(proj)} projections")
        print("   ops:", onnx_export.op_histogram(m))


if __name__ == "__main__":
    main()
