"""A torch model's whole state -- parameters and buffers -- as flat float64 vectors, restored exactly.

A checkpoint of a model with batch norm is its parameters *and* its running statistics: gradients
or outputs evaluated with the parameters of step t but the buffers of step T are silently wrong
(relative errors of order 1 on a ResNet at early checkpoints). :class:`StateLayout` names every
tensor of ``model.named_parameters()`` and ``model.named_buffers()`` with its shape and dtype;
:meth:`StateLayout.flatten` turns the model's current state into two float64 vectors and
:meth:`StateLayout.load` writes such vectors back. Every floating dtype up to float64 and every
integer up to 2**53 in magnitude survives the round trip through float64 bit for bit, so a restored
checkpoint is the recorded one exactly; complex tensors are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._require import require_torch

__all__ = ["StateLayout", "TensorEntry"]


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a model's state: ``name`` as in ``named_parameters``/``named_buffers``, ``shape``,
    ``dtype`` (e.g. ``"torch.float32"``) and ``kind`` ("parameter" or "buffer")."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def to_list(self) -> list[Any]:
        return [self.name, list(self.shape), self.dtype, self.kind]


def _state_tensors(model: Any) -> list[tuple[str, Any, str]]:
    tensors = [(name, p, "parameter") for name, p in model.named_parameters()]
    tensors += [(name, b, "buffer") for name, b in model.named_buffers()]
    return tensors


@dataclass(frozen=True)
class StateLayout:
    """The order, shapes and dtypes of a model's parameters (first) and buffers (then).

    ``parameters`` follows ``model.parameters()``, so the flat parameter vector is the one of
    ``torch.nn.utils.parameters_to_vector``.
    """

    entries: tuple[TensorEntry, ...]

    @classmethod
    def of(cls, model: Any) -> StateLayout:
        entries = []
        for name, tensor, kind in _state_tensors(model):
            if tensor.is_complex():
                raise TypeError(f"model: {kind} {name!r} is complex ({tensor.dtype}); trajcore records real states")
            entries.append(TensorEntry(name, tuple(int(s) for s in tensor.shape), str(tensor.dtype), kind))
        return cls(tuple(entries))

    @classmethod
    def from_list(cls, data: Any) -> StateLayout:
        """Inverse of :meth:`to_list` (the form stored in a run's metadata)."""
        return cls(tuple(TensorEntry(str(n), tuple(int(s) for s in shape), str(d), str(k)) for n, shape, d, k in data))

    def to_list(self) -> list[list[Any]]:
        return [e.to_list() for e in self.entries]

    def _of_kind(self, kind: str) -> list[TensorEntry]:
        return [e for e in self.entries if e.kind == kind]

    @property
    def parameter_count(self) -> int:
        return sum(e.size for e in self._of_kind("parameter"))

    @property
    def buffer_count(self) -> int:
        return sum(e.size for e in self._of_kind("buffer"))

    def check_model(self, model: Any, argument: str = "model") -> None:
        """``ValueError`` naming the first tensor where ``model``'s state differs from this layout."""
        other = StateLayout.of(model)
        if other == self:
            return
        mine, theirs = {e.name: e for e in self.entries}, {e.name: e for e in other.entries}
        for name in sorted(set(mine) | set(theirs)):
            a, b = mine.get(name), theirs.get(name)
            if a != b:
                raise ValueError(
                    f"{argument}: its state does not match the recorded one at {name!r}: recorded "
                    f"{None if a is None else a.to_list()}, the model has {None if b is None else b.to_list()}"
                )
        raise ValueError(f"{argument}: its parameters and buffers are in another order than the recorded ones")

    def flatten(self, model: Any) -> tuple[np.ndarray, np.ndarray]:
        """The model's current ``(parameters (P,), buffers (Q,))`` as float64 copies."""
        torch = require_torch()
        flat: dict[str, list[np.ndarray]] = {"parameter": [], "buffer": []}
        with torch.no_grad():
            for _, tensor, kind in _state_tensors(model):
                flat[kind].append(tensor.detach().to("cpu", torch.float64).reshape(-1).numpy().copy())
        return tuple(np.concatenate(v) if v else np.empty(0) for v in (flat["parameter"], flat["buffer"]))  # type: ignore[return-value]

    def load(self, model: Any, parameters: np.ndarray, buffers: np.ndarray | None) -> None:
        """Write ``parameters (P,)`` and ``buffers (Q,)`` (as made by :meth:`flatten`) into ``model``, in place."""
        torch = require_torch()
        sources = {"parameter": np.asarray(parameters), "buffer": np.asarray(buffers if buffers is not None else [])}
        offsets = {"parameter": 0, "buffer": 0}
        if sources["parameter"].size != self.parameter_count:
            raise ValueError(f"parameters: expected {self.parameter_count} values, got {sources['parameter'].size}")
        if buffers is not None and sources["buffer"].size != self.buffer_count:
            raise ValueError(f"buffers: expected {self.buffer_count} values, got {sources['buffer'].size}")
        with torch.no_grad():
            for _, tensor, kind in _state_tensors(model):
                if kind == "buffer" and buffers is None:
                    continue
                start = offsets[kind]
                piece = sources[kind][start : start + tensor.numel()]
                offsets[kind] = start + tensor.numel()
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(piece)).reshape(tensor.shape).to(tensor.dtype))

    def snapshot(self, model: Any) -> list[Any]:
        """Exact copies of every state tensor (in the model's dtypes and devices), for :meth:`restore`."""
        return [tensor.detach().clone() for _, tensor, _ in _state_tensors(model)]

    @staticmethod
    def restore(model: Any, snapshot: list[Any]) -> None:
        torch = require_torch()
        with torch.no_grad():
            for (_, tensor, _), saved in zip(_state_tensors(model), snapshot, strict=True):
                tensor.copy_(saved)
