"""A small ViT encoder and an autoregressive Transformer decoder with a KV cache."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 64
    patch_size: int = 8
    dim: int = 128
    heads: int = 4
    encoder_layers: int = 3
    decoder_layers: int = 3
    vocab_size: int = 100
    max_len: int = 50


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def split(self, x):  # (B, T, D) -> (B, H, T, D/H)
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x):
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def forward(self, x, k, v, causal: bool = False):
        q = self.split(self.q(x))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        b, h, t, dh = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, h * dh))


class EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, *self.attn.keys_values(h))
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, memory_kv, cache=None):
        """x (B, T, D). With ``cache`` (a dict), x is the newest position(s) and K/V are appended."""
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)
        if cache is None:
            x = x + self.self_attn(h, k, v, causal=True)
        else:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
            x = x + self.self_attn(h, k, v)  # one new position attends to all cached ones
        x = x + self.cross_attn(self.norm2(x), *memory_kv)
        return x + self.mlp(self.norm3(x))


class Seq2Seq(nn.Module):
    """ViT encoder over image patches, causal decoder over tokens (BOS = vocab_size - 1)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        n_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.patch = nn.Conv2d(3, cfg.dim, cfg.patch_size, stride=cfg.patch_size)
        self.patch_pos = nn.Parameter(torch.randn(1, n_patches, cfg.dim) * 0.02)
        self.encoder = nn.ModuleList(EncoderBlock(cfg.dim, cfg.heads) for _ in range(cfg.encoder_layers))
        self.encoder_norm = nn.LayerNorm(cfg.dim)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.token_pos = nn.Parameter(torch.randn(1, cfg.max_len, cfg.dim) * 0.02)
        self.decoder = nn.ModuleList(DecoderBlock(cfg.dim, cfg.heads) for _ in range(cfg.decoder_layers))
        self.decoder_norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size)

    @property
    def bos(self) -> int:
        return self.cfg.vocab_size - 1

    def encode(self, images: torch.Tensor) -> list:
        """uint8 images (B, H, W, 3) -> per decoder layer cross-attention (K, V)."""
        x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        x = self.patch(x).flatten(2).transpose(1, 2) + self.patch_pos
        for block in self.encoder:
            x = block(x)
        memory = self.encoder_norm(x)
        return [block.cross_attn.keys_values(memory) for block in self.decoder]

    def decode(self, tokens: torch.Tensor, memory_kv: list, caches=None, start: int = 0) -> torch.Tensor:
        """Logits (B, T, V) for input tokens (B, T) at positions start .. start + T - 1."""
        x = self.embed(tokens) + self.token_pos[:, start : start + tokens.shape[1]]
        for i, block in enumerate(self.decoder):
            x = block(x, memory_kv[i], None if caches is None else caches[i])
        return self.head(self.decoder_norm(x))

    def forward(self, images: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return self.decode(inputs, self.encode(images))

    @staticmethod
    def repeat_memory(memory_kv: list, n: int) -> list:
        """Memory of B images -> B * n (each image repeated n times, adjacent)."""
        return [(k.repeat_interleave(n, 0), v.repeat_interleave(n, 0)) for k, v in memory_kv]
