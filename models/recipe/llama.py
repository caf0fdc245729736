"""Llama-architecture decoder in plain PyTorch, mirroring the module names of
Hugging Face's LlamaForCausalLM (model.embed_tokens, model.layers.N.self_attn.
{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj, input_layernorm,
post_attention_layernorm, model.norm, lm_head).

Export-safe choices (torch 1.13 TorchScript ONNX exporter):
  * GQA is expand + reshape (no repeat_interleave, which bakes traced sizes);
  * the causal mask is built from index tensors derived from attention_mask
    (key index j may be attended by query i iff j <= past_len + i, and the
    attention_mask keeps padded keys out), never from triu/tril with a Python
    int diagonal;
  * RoPE cos/sin are computed in-graph from position_ids;
  * past length 0 (zero-size past tensors) works.
The same building blocks are reused by the family fixtures in families.py.
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class LlamaConfig:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    num_key_value_heads: int = 2
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    max_position_embeddings: int = 128

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def to_dict(self):
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5, plus_one=False):
        super().__init__()
        self.eps = eps
        self.plus_one = plus_one  # Gemma: scale by (1 + weight), weight init 0
        self.weight = nn.Parameter(torch.zeros(dim) if plus_one else torch.ones(dim))

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(var + self.eps)
        w = 1.0 + self.weight if self.plus_one else self.weight
        return w * x


def rope_cos_sin(position_ids, inv_freq):
    """position_ids [b, s] int64 -> cos, sin [b, 1, s, head_dim]."""
    freqs = position_ids.unsqueeze(-1).float() * inv_freq  # [b, s, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().unsqueeze(1), emb.sin().unsqueeze(1)


def rotate_half(x):
    h = x.shape[-1] // 2
    x1 = x[..., :h]
    x2 = x[..., h:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(q, k, cos, sin):
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def inv_freq_for(head_dim, theta):
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))


def causal_mask(attention_mask, input_ids):
    """[b, 1, s, T] bool; sizes come from the tensors (dynamic in ONNX)."""
    ones = torch.ones_like(attention_mask)
    key_idx = torch.cumsum(ones, dim=-1) - 1                 # [b, T]: 0..T-1
    s_ones = torch.ones_like(input_ids)
    # query index in the KV sequence: T - s + i  ==  (T - s) + cumsum - 1
    total = ones.sum(-1, keepdim=True)                       # [b, 1]  = T
    s_len = s_ones.sum(-1, keepdim=True)                     # [b, 1]  = s
    query_idx = total - s_len + torch.cumsum(s_ones, dim=-1) - 1   # [b, s]
    allowed = key_idx.unsqueeze(1) <= query_idx.unsqueeze(-1)      # [b, s, T]
    allowed = allowed & attention_mask.unsqueeze(1).bool()
    return allowed.unsqueeze(1)


def attention_core(q, k, v, mask, n_rep, scale):
    """q [b, nh, s, hd], k/v [b, nkv, T, hd] -> [b, s, nh*hd]."""
    b, nkv, T, hd = k.shape
    if n_rep > 1:
        k = k[:, :, None, :, :].expand(b, nkv, n_rep, T, hd).reshape(b, nkv * n_rep, T, hd)
        v = v[:, :, None, :, :].expand(b, nkv, n_rep, T, hd).reshape(b, nkv * n_rep, T, hd)
    scores = torch.matmul(q, k.transpose(2, 3)) * scale
    scores = torch.where(mask, scores, torch.tensor(torch.finfo(torch.float32).min))
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, v)                              # [b, nh, s, hd]
    out = out.transpose(1, 2)
    return out.reshape(out.shape[0], out.shape[1], -1)


class LlamaAttention(nn.Module):
    def __init__(self, cfg, qkv_bias=False):
        super().__init__()
        self.nh = cfg.num_attention_heads
        self.nkv = cfg.num_key_value_heads
        self.hd = cfg.head_dim
        h = cfg.hidden_size
        self.q_proj = nn.Linear(h, self.nh * self.hd, bias=qkv_bias)
        self.k_proj = nn.Linear(h, self.nkv * self.hd, bias=qkv_bias)
        self.v_proj = nn.Linear(h, self.nkv * self.hd, bias=qkv_bias)
        self.o_proj = nn.Linear(self.nh * self.hd, h, bias=False)

    def forward(self, x, cos, sin, mask, past_k, past_v):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.nh, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.nkv, self.hd).transpose(1, 2)
        q, k = apply_rope(q, k, cos, sin)
        if past_k is not None:
            k = torch.cat((past_k, k), dim=2)
            v = torch.cat((past_v, v), dim=2)
        out = attention_core(q, k, v, mask, self.nh // self.nkv, 1.0 / math.sqrt(self.hd))
        return self.o_proj(out), k, v


class LlamaMLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, i = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, cfg, qkv_bias=False):
        super().__init__()
        self.self_attn = LlamaAttention(cfg, qkv_bias=qkv_bias)
        self.mlp = LlamaMLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask, past_k, past_v):
        a, k, v = self.self_attn(self.input_layernorm(x), cos, sin, mask, past_k, past_v)
        x = x + a
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, k, v


class DecoderStack(nn.Module):
    """HF-style `model` module: embed_tokens, layers, norm; forward runs the stack so that the
    exported node names carry the /model/... scope (e.g. /model/layers.0/self_attn/q_proj/MatMul)."""

    def __init__(self, vocab, hidden, layers, norm, head_dim, rope_theta, embed_scale=None):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(layers)
        self.norm = norm
        self.embed_scale = embed_scale  # Gemma: sqrt(hidden)
        self.register_buffer("inv_freq", inv_freq_for(head_dim, rope_theta), persistent=False)

    def forward(self, input_ids, attention_mask, position_ids, past):
        x = self.embed_tokens(input_ids)
        if self.embed_scale is not None:
            x = x * torch.tensor(self.embed_scale, dtype=x.dtype)
        cos, sin = rope_cos_sin(position_ids, self.inv_freq)
        mask = causal_mask(attention_mask, input_ids)
        presents = []
        for i, layer in enumerate(self.layers):
            pk = past[2 * i] if past else None
            pv = past[2 * i + 1] if past else None
            x, k, v = layer(x, cos, sin, mask, pk, pv)
            presents += [k, v]
        return self.norm(x), presents


class LlamaModel(DecoderStack):
    def __init__(self, cfg, qkv_bias=False):
        super().__init__(cfg.vocab_size, cfg.hidden_size,
                         [LlamaDecoderLayer(cfg, qkv_bias) for _ in range(cfg.num_hidden_layers)],
                         RMSNorm(cfg.hidden_size, cfg.rms_norm_eps), cfg.head_dim, cfg.rope_theta)


class LlamaForCausalLM(nn.Module):
    """forward(input_ids, attention_mask, position_ids, *past) -> (logits, *present)

    past / present are flat: key0, value0, key1, value1, ... each
    [b, num_key_value_heads, len, head_dim]. With no past given, the model runs
    without a cache (training) and still returns the presents.
    """

    def __init__(self, cfg, qkv_bias=False, tie_word_embeddings=False):
        super().__init__()
        self.cfg = cfg
        self.model = LlamaModel(cfg, qkv_bias)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if tie_word_embeddings:  # HF style: the lm_head module shares the embedding matrix
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids, attention_mask, position_ids, *past):
        x, presents = self.model(input_ids, attention_mask, position_ids, past)
        logits = self.lm_head(x)
        return (logits, *presents)

    def init_weights(self, std=0.02):
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=std)
        # scaled init for residual outputs (GPT-2 style)
        for layer in self.model.layers:
            nn.init.normal_(layer.self_attn.o_proj.weight, std=std / math.sqrt(2 * self.cfg.num_hidden_layers))
            nn.init.normal_(layer.mlp.down_proj.weight, std=std / math.sqrt(2 * self.cfg.num_hidden_layers))
