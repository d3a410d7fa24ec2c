"""Recorded trajectories: arrays plus the metadata needed to rerun them; ``.npz`` storage, no pickle."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._storage import load_record, save_record

__all__ = ["Trajectory"]

_ARRAYS = ("steps", "loss", "coefficients", "coefficient_pairs", "iterates", "final", "diverged_at")


@dataclass
class Trajectory:
    """One trajectory, or a batch of them sharing a leading axis B.

    Attributes
    ----------
    steps : (R,) int64
        Iteration numbers of the records (0 is the initial point).
    loss : (R,) or (B, R) float64
        Exact (noise-free) loss at each record; NaN after a trajectory diverged.
    coefficients : (R, K) or (B, R, K) float64
        Basis coefficients at each record, labelled by ``coefficient_pairs``.
    coefficient_pairs : (K, 2) int64
        Basis indices (i, j) of each recorded coefficient.
    iterates : (R, *P) or (B, R, *P) float64 or None
        Parameters at each record, when recorded.
    final : (*P) or (B, *P) float64
        Parameters at the end of the run (the last finite iterate of a diverged trajectory).
    diverged_at : int64 scalar or (B,)
        Step at which the loss became non-finite or exceeded the divergence limit; -1 if never.
    metadata : dict
        Problem description, run settings (lr, steps, seed, noise, record), the names of the recorded
        observables (``"observables"``, see :attr:`observable_labels`) and versions.
    """

    steps: np.ndarray
    loss: np.ndarray
    coefficients: np.ndarray
    coefficient_pairs: np.ndarray
    iterates: np.ndarray | None
    final: np.ndarray
    diverged_at: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Shapes and a few facts, never the data (a trajectory holds up to millions of numbers)."""

        def shape(array: np.ndarray | None) -> str:
            return "None" if array is None else f"{tuple(np.shape(array))}"

        diverged = int(np.sum(np.asarray(self.diverged_at) >= 0))
        steps = np.asarray(self.steps)
        span = f"{int(steps[0])}..{int(steps[-1])}" if steps.size else "none"
        batch = f"batch={self.batch_size}, " if self.batched else ""
        keys = ", ".join(list(self.metadata)[:6]) + (", ..." if len(self.metadata) > 6 else "")
        return (
            f"Trajectory({batch}records={steps.size} (steps {span}), loss {shape(self.loss)}, "
            f"coefficients {shape(self.coefficients)}, iterates {shape(self.iterates)}, "
            f"final {shape(self.final)}, diverged {diverged} of {self.batch_size}, metadata: {keys})"
        )

    @property
    def observable_labels(self) -> list[str] | None:
        """Name of each of the K recorded observables, in the order of the last axis of
        ``coefficients`` (e.g. ``beta[0,1]``, or ``product_singular_values[2]`` for a linear network);
        None for a trajectory saved before labels were recorded."""
        labels = self.metadata.get("observables")
        return None if labels is None else list(labels)

    @property
    def batched(self) -> bool:
        return bool(np.ndim(self.diverged_at) == 1)

    @property
    def batch_size(self) -> int:
        return int(np.shape(self.diverged_at)[0]) if self.batched else 1

    @property
    def diverged(self) -> bool | np.ndarray:
        """Whether (each) trajectory diverged."""
        flag = np.asarray(self.diverged_at) >= 0
        return flag if self.batched else bool(flag)

    def __len__(self) -> int:
        return self.batch_size

    def __getitem__(self, index: int) -> Trajectory:
        """Trajectory ``index`` of a batch."""
        if not self.batched:
            raise TypeError("a single trajectory cannot be indexed; it has no batch axis")
        b = int(index)
        if not -self.batch_size <= b < self.batch_size:
            raise IndexError(f"index {index} out of range for a batch of {self.batch_size}")
        return Trajectory(
            steps=self.steps,
            loss=self.loss[b],
            coefficients=self.coefficients[b],
            coefficient_pairs=self.coefficient_pairs,
            iterates=None if self.iterates is None else self.iterates[b],
            final=self.final[b],
            diverged_at=np.asarray(self.diverged_at[b]),
            metadata={**self.metadata, "batch_index": b},
        )

    def _as_single(self) -> Trajectory:
        """This trajectory without the batch bookkeeping (for runs given an unbatched init)."""
        metadata = {k: v for k, v in self.metadata.items() if k != "batch_index"}
        metadata["batch"] = None
        return Trajectory(
            steps=self.steps,
            loss=self.loss,
            coefficients=self.coefficients,
            coefficient_pairs=self.coefficient_pairs,
            iterates=self.iterates,
            final=self.final,
            diverged_at=self.diverged_at,
            metadata=metadata,
        )

    def coefficient(self, i: int, j: int | None = None) -> np.ndarray:
        """Series of coefficient (i, j) (default j = i): ``(R,)`` or ``(B, R)``."""
        j = i if j is None else j
        hits = np.flatnonzero((self.coefficient_pairs[:, 0] == i) & (self.coefficient_pairs[:, 1] == j))
        if hits.size == 0:
            raise KeyError(
                f"coefficient ({i}, {j}) was not recorded; recorded pairs: {self.coefficient_pairs.tolist()}"
            )
        return self.coefficients[..., hits[0]]

    def diagonal(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indices (k,), series (..., R, k))`` of the recorded diagonal coefficients beta_ii."""
        mask = self.coefficient_pairs[:, 0] == self.coefficient_pairs[:, 1]
        return self.coefficient_pairs[mask, 0], self.coefficients[..., mask]

    # -- storage ------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``path`` (``.npz`` arrays + JSON metadata, no pickle), atomically: readers see the
        previous file or the whole new one."""
        save_record(path, {name: getattr(self, name) for name in _ARRAYS}, self.metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Trajectory:
        """Read a trajectory written by :meth:`save` (never unpickles).

        A file that is not such a trajectory raises ``ValueError`` naming the path (a missing file
        raises ``FileNotFoundError``).
        """
        required = ("steps", "loss", "coefficients", "final", "diverged_at")
        arrays, metadata = load_record(path, _ARRAYS, required, "trajectory written by Trajectory.save")
        return cls(metadata=metadata, **arrays)  # type: ignore[arg-type]
