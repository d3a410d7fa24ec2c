"""The lazily imported ``torch`` module, with one clear error when the extra is not installed."""

from __future__ import annotations

from typing import Any

__all__ = ["INSTALL_HINT", "require_torch"]

INSTALL_HINT = "pip install 'trajcore[torch]' (the CPU build: pip install torch==2.13.0)"


def require_torch() -> Any:
    """The ``torch`` module, or an ``ImportError`` saying how to install it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(f"trajcore.torch needs PyTorch: {INSTALL_HINT}") from exc
    return torch
