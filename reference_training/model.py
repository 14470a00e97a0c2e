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
    # Coordinate tokens [coord_offset, coord_offset + n_bins): tokens that name a place in the
    # image (detection's box corners); none by default.
    coord_offset: int = 0
    n_bins: int = 0
    # > 0: output position p is cell (p // grid_positions, p % grid_positions) of a grid laid over the
    # image (panoptic's token grid); its input then carries that cell's patch-grid embedding.
    grid_positions: int = 0


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
        """Queries x (B * n, T, D) over keys/values (B, H, S, D/H): each memory serves n adjacent sequences."""
        q = self.split(self.q(x))
        b, h, t, dh = q.shape
        n = b // k.shape[0]
        if n > 1:
            # The n sequences of one memory (samples of one image) share its keys: one attention
            # over their stacked queries instead of n copies of the memory.
            assert not causal, "stacked queries have no causal order"
            q = q.view(-1, n, h, t, dh).transpose(1, 2).reshape(-1, h, n * t, dh)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        if n > 1:
            y = y.view(-1, h, n, t, dh).transpose(1, 2).reshape(b, h, t, dh)
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
            # Preallocated buffers (see Seq2Seq.new_caches): concatenating copied the whole cache per token.
            start, end = cache["length"], cache["length"] + k.shape[2]
            cache["k"][:, :, start:end], cache["v"][:, :, start:end] = k, v
            cache["length"] = end
            x = x + self.self_attn(
                h, cache["k"][:, :, :end], cache["v"][:, :, :end]
            )  # new positions attend to all cached ones
        x = x + self.cross_attn(self.norm2(x), *memory_kv)
        return x + self.mlp(self.norm3(x))


def sincos(ys: torch.Tensor, xs: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sine-cosine embeddings (N, dim) of 2D positions, y in the first half, x in the second."""
    quarter = dim // 4
    freq = 1.0 / (10000 ** (torch.arange(quarter) / quarter))
    parts = []
    for coord in (ys, xs):
        angles = coord[:, None].float() * freq[None]
        parts += [angles.sin(), angles.cos()]
    emb = torch.cat(parts, dim=1)
    return F.pad(emb, (0, dim - emb.shape[1]))


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """Position embeddings (1, grid * grid, dim) of the patches: position is known from step 0."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return sincos(ys.reshape(-1), xs.reshape(-1), dim)[None]


class Seq2Seq(nn.Module):
    """ViT encoder over image patches, causal decoder over tokens (BOS = vocab_size - 1)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        grid = cfg.image_size // cfg.patch_size
        # Patch embedding with a small convolutional stem (a stride-2 conv, then the
        # remaining stride): early convolutions make ViTs learn much faster from scratch,
        # which is what a CPU-sized run needs.
        self.patch = nn.Sequential(
            nn.Conv2d(3, cfg.dim // 2, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(cfg.dim // 2, cfg.dim, cfg.patch_size // 2, stride=cfg.patch_size // 2),
        )
        self.register_buffer("patch_pos", sincos_2d(grid, cfg.dim), persistent=False)
        self.encoder = nn.ModuleList(EncoderBlock(cfg.dim, cfg.heads) for _ in range(cfg.encoder_layers))
        self.encoder_norm = nn.LayerNorm(cfg.dim)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        # A coordinate token also carries the patch-grid embedding of its value (in both
        # halves: the slot says whether it is a y or an x), so the decoder can look up
        # "the patch at this coordinate" from the first steps instead of learning 2 x n_bins
        # unrelated embeddings.
        token_geometry = torch.zeros(cfg.vocab_size, cfg.dim)
        if cfg.n_bins:
            v = torch.arange(cfg.n_bins) * (grid / cfg.n_bins)
            token_geometry[cfg.coord_offset : cfg.coord_offset + cfg.n_bins] = sincos(v, v, cfg.dim)
        self.register_buffer("token_geometry", token_geometry, persistent=False)
        self.token_pos = nn.Parameter(torch.randn(1, cfg.max_len, cfg.dim) * 0.02)
        if cfg.grid_positions:
            g = cfg.grid_positions
            p = torch.arange(cfg.max_len)
            self.register_buffer(
                "cell_geometry",
                sincos((p // g) * (grid / g), (p % g) * (grid / g), cfg.dim)[None],
                persistent=False,
            )
        self.decoder = nn.ModuleList(DecoderBlock(cfg.dim, cfg.heads) for _ in range(cfg.decoder_layers))
        self.decoder_norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size)
        # Task extras (e.g. detection's confidence head) are added by the task as submodules
        # after construction: see tasks.Task.model_extras.

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

    def new_caches(self, batch: int) -> list[dict]:
        """Empty key/value caches of every decoder layer for incremental decoding of ``batch`` sequences."""
        c = self.cfg
        shape = (batch, c.heads, c.max_len, c.dim // c.heads)
        device = self.head.weight.device
        return [
            {"k": torch.empty(shape, device=device), "v": torch.empty(shape, device=device), "length": 0}
            for _ in self.decoder
        ]

    def decode(
        self, tokens: torch.Tensor, memory_kv: list, caches=None, start: int = 0, hidden: bool = False
    ):
        """Logits (B * n, T, V) for input tokens (B * n, T) at positions start .. start + T - 1,
        over the memories of B images (each serves n adjacent sequences).

        With ``hidden=True`` also the final hidden states (B, T, D) the logits are read from.
        """
        x = (
            self.embed(tokens)
            + self.token_geometry[tokens]
            + self.token_pos[:, start : start + tokens.shape[1]]
        )
        if self.cfg.grid_positions:
            x = x + self.cell_geometry[:, start : start + tokens.shape[1]]
        for i, block in enumerate(self.decoder):
            x = block(x, memory_kv[i], None if caches is None else caches[i])
        x = self.decoder_norm(x)
        return (self.head(x), x) if hidden else self.head(x)

    def forward(self, images: torch.Tensor, inputs: torch.Tensor, head=None):
        """Teacher-forced logits (B * n, T, V) for B images and n adjacent input sequences (B * n, T) each.

        With ``head`` (a function of (model, logits, hidden states (B * n, T, D))), also
        its output: how a task's extra head (detection's confidence) reads the decoder.
        Training goes through here (not encode/decode) so that a DistributedDataParallel
        wrapper sees the whole computation.
        """
        logits, x = self.decode(inputs, self.encode(images), hidden=True)
        if head is None:
            return logits
        return logits, head(self, logits, x)


def unwrap(model: nn.Module) -> Seq2Seq:
    """The Seq2Seq inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)
