"""The small PyTorch networks of the built-in deep-network experiments (CNN, MLP, ResNet, ViT).

Each model ends in a linear layer without bias named ``head`` (the paper's protocol: ``f(x) = W
phi(x)``), so ``Recorder(model, probe, "head", feature_side="input")`` reads exactly the
penultimate features. Inputs are images ``(batch, channels, size, size)``; the MLP flattens them.
Everything is CPU-sized; widths are arguments so that a report can say what was scaled.

* :func:`mnist_cnn` -- the authors' MNIST CNN: blocks ``Conv2d(3x3, padding 1) -> ReLU ->
  MaxPool2d(2)`` of the given widths, then ``Flatten -> head``.
* :func:`mlp` -- ``Flatten``, ReLU hidden layers, ``head``.
* :func:`small_resnet` -- a stem and basic residual blocks with batch norm, global average pooling.
* :func:`tiny_vit` -- patch embedding, pre-norm transformer blocks, a final LayerNorm, mean pooling.
* :func:`scale_initialization` -- multiply the default initial weights by ``init_scale``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from ._require import INSTALL_HINT

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError(f"trajcore.torch.models needs PyTorch: {INSTALL_HINT}") from exc
nn = torch.nn

__all__ = ["mlp", "mnist_cnn", "scale_initialization", "small_resnet", "tiny_vit"]


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def mnist_cnn(widths: tuple[int, ...] = (32, 8), *, in_channels: int = 1, size: int = 28, classes: int = 10) -> Any:
    """Conv blocks of ``widths`` channels (each halves the image), then a linear head without bias.

    The paper's widths are (256, 64), (256, 128, 64), (256, 128, 128, 64) for 2, 3, 4 blocks.
    """
    if not widths:
        raise ValueError("widths: expected at least one block")
    layers: OrderedDict[str, Any] = OrderedDict()
    channels, side = _positive("in_channels", in_channels), _positive("size", size)
    for i, width in enumerate(widths):
        width = _positive("widths", width)
        if side < 2:
            raise ValueError(f"widths: {len(widths)} blocks halve a {size}x{size} image below one pixel")
        layers[f"block{i + 1}"] = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        channels, side = width, side // 2
    layers["flatten"] = nn.Flatten()
    layers["head"] = nn.Linear(channels * side * side, _positive("classes", classes), bias=False)
    return nn.Sequential(layers)


def mlp(input_dim: int, classes: int = 10, hidden: tuple[int, ...] = (64, 64)) -> Any:
    """``Flatten -> (Linear -> ReLU) x len(hidden) -> head``."""
    layers: OrderedDict[str, Any] = OrderedDict(flatten=nn.Flatten())
    width = _positive("input_dim", input_dim)
    for i, h in enumerate(hidden):
        layers[f"hidden{i + 1}"] = nn.Sequential(nn.Linear(width, _positive("hidden", h)), nn.ReLU())
        width = h
    layers["head"] = nn.Linear(width, _positive("classes", classes), bias=False)
    return nn.Sequential(layers)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Any) -> Any:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


def small_resnet(channels: int = 16, blocks: int = 2, *, in_channels: int = 1, classes: int = 10) -> Any:
    """``conv-BN-ReLU`` stem, ``blocks`` basic residual blocks (batch norm), global average pool, head."""
    channels = _positive("channels", channels)
    layers: OrderedDict[str, Any] = OrderedDict(
        stem=nn.Sequential(
            nn.Conv2d(_positive("in_channels", in_channels), channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
    )
    for i in range(_positive("blocks", blocks)):
        layers[f"res{i + 1}"] = _ResidualBlock(channels)
    layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["head"] = nn.Linear(channels, _positive("classes", classes), bias=False)
    return nn.Sequential(layers)


class _Attention(nn.Module):
    """Multi-head self-attention written out (softmax(q k^T / sqrt(d)) v), so autograd batches it."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads: must divide dim={dim}, got {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Any) -> Any:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(b, n, d))


class _TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: Any) -> Any:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _TinyViT(nn.Module):
    def __init__(self, size: int, patch: int, dim: int, depth: int, heads: int, in_channels: int, classes: int):
        super().__init__()
        if size % patch:
            raise ValueError(f"patch: must divide the image size {size}, got {patch}")
        self.embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.position = nn.Parameter(0.02 * torch.randn(1, (size // patch) ** 2, dim))
        self.blocks = nn.Sequential(*[_TransformerBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes, bias=False)

    def forward(self, x: Any) -> Any:
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position
        return self.head(self.norm(self.blocks(tokens)).mean(dim=1))


def tiny_vit(
    *,
    size: int = 8,
    patch: int = 2,
    dim: int = 32,
    depth: int = 1,
    heads: int = 2,
    in_channels: int = 1,
    classes: int = 10,
) -> Any:
    """Patch embedding, ``depth`` pre-norm transformer blocks, final LayerNorm, mean pooling, head.

    The final LayerNorm gives features of unit scale whatever the initialization, so the
    outputs at initialization are not small: a case where condition 1 can fail.
    """
    return _TinyViT(
        _positive("size", size),
        _positive("patch", patch),
        _positive("dim", dim),
        _positive("depth", depth),
        _positive("heads", heads),
        _positive("in_channels", in_channels),
        _positive("classes", classes),
    )


def scale_initialization(model: Any, init_scale: float) -> Any:
    """Multiply every weight matrix and kernel (parameters with two or more dimensions) by
    ``init_scale``, in place (the authors' ``init_scale``); biases and normalisation gains keep
    their defaults. Returns the model."""
    scale = float(init_scale)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"init_scale: expected a positive number, got {init_scale!r}")
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.mul_(scale)
    return model
