"""Deep linear networks (PAPERS.md section 5): ``P = W_N ... W_1``, ``L = 1/2 ||P X - Y||_F^2``.

The parameters of one trajectory are all layer matrices concatenated, row-major, layer 1 first
(``W_i`` has shape ``(d_i, d_{i-1})``); :meth:`DeepLinearNetwork.layers` and
:meth:`DeepLinearNetwork.flatten` convert. Full-batch GD runs on the moments ``X X^T``, ``Y X^T``
(cost independent of n); minibatches, dropout, input and label noise use the data.

Recorded observables (``Record(coefficients=...)`` selects groups; default all), in this order:

==========================  ======================  ===================================================
group                       values                  meaning
==========================  ======================  ===================================================
``product_singular_values`` ``min(d_0, d_N)``       singular values of P, descending
``product_ranks``           3                       numerical, effective, stable rank of P
``layer_ranks``             N                       numerical rank of each W_i
``balancedness``            N - 1                   ``||W_{j+1}^T W_{j+1} - W_j W_j^T||_F``
``subspace_dims``           N - 1                   ``dim S_k``, ``S_k = col(W_k) + row(W_{k+1})``
``optimum_distance``        1                       ``||P - P*||_F`` to the (reduced-rank) optimum
==========================  ======================  ===================================================

``Record(coefficients="spectrum")`` keeps the product groups and the distance only (cheapest);
:meth:`DeepLinearNetwork.observables` splits a trajectory's records into named arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _core
from ._deprecation import old_spellings
from ._memory import check_allocation
from ._validation import as_float_array, as_nonnegative_int, as_positive_float, as_positive_int
from .problem import Problem, Records

__all__ = ["DeepLinearNetwork", "OBSERVABLE_GROUPS"]

#: observable groups in their recorded order
OBSERVABLE_GROUPS = (
    "product_singular_values",
    "product_ranks",
    "layer_ranks",
    "balancedness",
    "subspace_dims",
    "optimum_distance",
)
_SPECTRUM = ("product_singular_values", "product_ranks", "optimum_distance")
#: the initialisations :meth:`DeepLinearNetwork.initial_point` draws
_INIT_KINDS = ("small", "default", "truncated", "aligned")

ObservableRequest = None | bool | str | Sequence[str]


def _batch_rngs(seed: int | None, batch: int | None) -> tuple[np.random.Generator, int]:
    count = 1 if batch is None else as_positive_int("batch", batch)
    return np.random.default_rng(seed), count


class DeepLinearNetwork(Problem):
    """Deep linear network ``P = W_N ... W_1`` on data ``X (d_0, n)``, ``Y (d_N, n)``.

    Parameters
    ----------
    widths : sequence of N + 1 positive ints ``[d_0, ..., d_N]``
        Layer widths; ``W_i`` is ``(d_i, d_{i-1})``.
    X : (d_0, n) float64
        Inputs, one sample per column.
    Y : (d_N, n) float64
        Targets, one sample per column.
    batch_size : int in [1, n], optional
        Minibatch SGD with this many samples per step (drawn without replacement from stream 0 of
        the run's seed); the gradient is scaled by ``n / batch_size``. Default: full batch.
    rank_rtol, rank_atol : float, optional
        Numerical-rank rule of the recorded ranks and of singular-value imputation: an absolute
        threshold ``rank_atol``, or ``rank_rtol * s_max``; default ``max(m, n) * eps * s_max``
        (numpy's rule). Give at most one.
    """

    parameter_ndim = 1
    model_noise = frozenset(
        {"singular_value_imputation", "weight_noise", "dropconnect", "dropout", "input_noise", "label_noise"}
    )
    name = "deep_linear_network"

    def __init__(
        self,
        widths: Sequence[int],
        X: Any,
        Y: Any,
        *,
        batch_size: int | None = None,
        rank_rtol: float | None = None,
        rank_atol: float | None = None,
    ) -> None:
        if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
            raise TypeError(f"widths: expected a sequence of positive integers, got {type(widths).__name__}")
        self.widths = tuple(as_positive_int(f"widths[{i}]", w) for i, w in enumerate(widths))
        if len(self.widths) < 2:
            raise ValueError(f"widths: need at least two entries [d_0, d_1], got {list(self.widths)}")
        self.X = as_float_array("X", X, ndim=2)
        self.Y = as_float_array("Y", Y, ndim=2)
        if self.X.shape[0] != self.widths[0]:
            raise ValueError(
                f"widths: d_0 = {self.widths[0]} does not match X with {self.X.shape[0]} rows (X is (d_0, n))"
            )
        if self.Y.shape[0] != self.widths[-1]:
            raise ValueError(
                f"widths: d_N = {self.widths[-1]} does not match Y with {self.Y.shape[0]} rows (Y is (d_N, n))"
            )
        if self.X.shape[1] != self.Y.shape[1] or self.X.shape[1] == 0:
            raise ValueError(
                f"X, Y: need the same positive number of samples (columns), got {self.X.shape} and {self.Y.shape}"
            )
        self.n = int(self.X.shape[1])
        self.batch_size = self.n if batch_size is None else as_positive_int("batch_size", batch_size)
        if self.batch_size > self.n:
            raise ValueError(f"batch_size: must be <= n = {self.n}, got {self.batch_size}")
        if rank_rtol is not None and rank_atol is not None:
            raise ValueError("rank_rtol, rank_atol: give at most one of them")
        self.rank_rtol = None if rank_rtol is None else as_positive_float("rank_rtol", rank_rtol)
        self.rank_atol = None if rank_atol is None else as_positive_float("rank_atol", rank_atol)
        self.layer_shapes = tuple((self.widths[i + 1], self.widths[i]) for i in range(len(self.widths) - 1))
        self.n_layers = len(self.layer_shapes)
        self._offsets = np.concatenate([[0], np.cumsum([a * b for a, b in self.layer_shapes])]).astype(int)
        self.n_params = int(self._offsets[-1])
        self.Sxx = self.X @ self.X.T
        self.Syx = self.Y @ self.X.T
        self.yy = float(np.sum(self.Y**2))
        self._optimum: tuple[np.ndarray, float, np.ndarray] | None = None
        #: the planted map A of :meth:`planted` (None for other data)
        self.signal: np.ndarray | None = None
        #: the planted map's singular values ``sigma (rank,)``, descending (None for other data)
        self.sigma: np.ndarray | None = None

    # -- data generators -------------------------------------------------------------------------

    @classmethod
    def examples(cls) -> dict[str, Problem]:
        return {"dln_minibatch": cls.planted([4, 5, 3], n=24, rank=2, seed=8, batch_size=8)}

    @classmethod
    @old_spellings(renamed={"singular_values": "sigma"})
    def planted(
        cls,
        widths: Sequence[int],
        *,
        n: int = 1000,
        rank: int = 1,
        sigma: Any = None,
        noise: float = 0.1,
        seed: int | None = 0,
        **kwargs: Any,
    ) -> DeepLinearNetwork:
        """Planted signal ``Y = A X + noise * E`` with ``X, E ~ N(0, 1)`` and ``rank(A) = rank``.

        ``A = U diag(sigma) V^T`` with Haar-like orthonormal U, V and ``sigma`` (default
        ``rank, ..., 1``); the problem keeps ``signal = A`` and ``sigma``. Extra keyword arguments go
        to the constructor (``batch_size``, rank tolerances). ``singular_values=`` is the deprecated
        spelling of ``sigma=``, kept one release.
        """
        dims = [as_positive_int(f"widths[{i}]", w) for i, w in enumerate(widths)]
        if len(dims) < 2:
            raise ValueError(f"widths: need at least two entries, got {dims}")
        n = as_positive_int("n", n)
        rank = as_positive_int("rank", rank)
        d0, dN = dims[0], dims[-1]
        if rank > min(d0, dN):
            raise ValueError(f"rank: must be <= min(d_0, d_N) = {min(d0, dN)}, got {rank}")
        s = np.arange(rank, 0, -1, dtype=float) if sigma is None else as_float_array("sigma", sigma, shape=(rank,))
        noise = as_positive_float("noise", noise, allow_zero=True)
        rng = np.random.default_rng(seed)
        U, _ = np.linalg.qr(rng.standard_normal((dN, rank)))
        V, _ = np.linalg.qr(rng.standard_normal((d0, rank)))
        A = (U * s) @ V.T
        X = rng.standard_normal((d0, n))
        Y = A @ X + noise * rng.standard_normal((dN, n))
        problem = cls(dims, X, Y, **kwargs)
        problem.signal = A
        problem.sigma = s
        return problem

    @classmethod
    def paper_data(
        cls, widths: Sequence[int] = (10, 10, 10, 10), *, n: int = 1000, seed: int | None = 0, **kwargs: Any
    ) -> DeepLinearNetwork:
        """Paper B's no-signal data: ``X ~ U(-5, 5)^(d_0 x n)``, ``Y ~ U(-1, 1)^(d_N x n)``, independent."""
        dims = [as_positive_int(f"widths[{i}]", w) for i, w in enumerate(widths)]
        if len(dims) < 2:
            raise ValueError(f"widths: need at least two entries, got {dims}")
        n = as_positive_int("n", n)
        rng = np.random.default_rng(seed)
        X = rng.uniform(-5.0, 5.0, size=(dims[0], n))
        Y = rng.uniform(-1.0, 1.0, size=(dims[-1], n))
        return cls(dims, X, Y, **kwargs)

    # -- parameters ------------------------------------------------------------------------------

    def parameter_shape(self, width: int) -> tuple[int, ...]:
        return (self.n_params,)

    def validate_params(self, name: str, params: Any) -> tuple[np.ndarray, bool]:
        """Flat parameters ``(B, n_params)`` plus whether a batch was given; also accepts a list of the
        N layer matrices ``(d_i, d_{i-1})`` or ``(B, d_i, d_{i-1})``."""
        if (
            isinstance(params, (list, tuple))
            and len(params) == self.n_layers
            and all(np.ndim(p) in (2, 3) for p in params)
        ):
            params = self.flatten(params)
        array = as_float_array(name, params, ndim=(1, 2))
        if array.shape[-1] != self.n_params:
            raise ValueError(
                f"{name}: expected {self.n_params} parameters (layers {list(self.layer_shapes)} "
                f"concatenated), shape ({self.n_params},) or (B, {self.n_params}), got {array.shape}"
            )
        batched = array.ndim == 2
        return (array if batched else array[None]), batched

    def flatten(self, layers: Sequence[Any]) -> np.ndarray:
        """Concatenate layer matrices ``W_i (.., d_i, d_{i-1})`` into ``(.., n_params)``."""
        if len(layers) != self.n_layers:
            raise ValueError(f"layers: expected {self.n_layers} matrices, got {len(layers)}")
        mats = [as_float_array(f"layers[{i}]", W, ndim=(2, 3)) for i, W in enumerate(layers)]
        for i, (W, shape) in enumerate(zip(mats, self.layer_shapes, strict=True)):
            if W.shape[-2:] != shape or W.ndim != mats[0].ndim or W.shape[:-2] != mats[0].shape[:-2]:
                raise ValueError(f"layers[{i}]: expected shape {shape} (with the same batch axis), got {W.shape}")
        lead = mats[0].shape[:-2]
        return np.concatenate([W.reshape(*lead, -1) for W in mats], axis=-1)

    def layers(self, state: Any) -> list[np.ndarray]:
        """The layer matrices ``W_1, ..., W_N`` (views) of ``state (n_params,)`` or ``(B, n_params)``."""
        x, batched = self.validate_params("state", state)
        out = []
        for i, shape in enumerate(self.layer_shapes):
            block = x[:, self._offsets[i] : self._offsets[i + 1]].reshape(x.shape[0], *shape)
            out.append(block if batched else block[0])
        return out

    def product(self, state: Any) -> np.ndarray:
        """``P = W_N ... W_1``: ``(d_N, d_0)`` or ``(B, d_N, d_0)``."""
        Ws = self.layers(state)
        P = Ws[0]
        for W in Ws[1:]:
            P = W @ P
        return P

    # -- NumPy reference -----------------------------------------------------------------------

    def loss(self, state: Any) -> Any:
        """``1/2 ||P X - Y||_F^2`` from the data: float, or ``(B,)`` for a batch."""
        P = self.product(state)
        R = P @ self.X - self.Y
        return 0.5 * np.sum(R**2, axis=(-2, -1))

    def grad(self, state: Any) -> np.ndarray:
        """Full-batch gradient, flat like ``state``:
        ``grad W_i = (W_N...W_{i+1})^T (P X - Y) X^T (W_{i-1}...W_1)^T``."""
        Ws = self.layers(state)
        batched = Ws[0].ndim == 3
        Ws = [W if batched else W[None] for W in Ws]
        B = Ws[0].shape[0]
        prefix = [np.broadcast_to(np.eye(self.widths[0]), (B, self.widths[0], self.widths[0]))]
        for W in Ws:
            prefix.append(W @ prefix[-1])
        E = (prefix[-1] @ self.X - self.Y) @ self.X.T  # (B, d_N, d_0)
        grads: list[np.ndarray] = [np.empty(0)] * self.n_layers
        suffix = np.broadcast_to(np.eye(self.widths[-1]), (B, self.widths[-1], self.widths[-1]))
        for i in range(self.n_layers - 1, -1, -1):
            grads[i] = np.swapaxes(suffix, -1, -2) @ E @ np.swapaxes(prefix[i], -1, -2)
            suffix = suffix @ Ws[i]
        flat = self.flatten(grads)
        return flat if batched else flat[0]

    @property
    def zero_loss(self) -> float:
        return 0.5 * self.yy

    @property
    def rank_cap(self) -> int:
        """``k = min_i d_i``: the largest rank the product can have."""
        return min(self.widths)

    def _solve_optimum(self) -> tuple[np.ndarray, float, np.ndarray]:
        if self._optimum is None:
            # Reduced-rank regression: P_ols = Syx Sxx^+, the optimum of rank <= k projects it on the top-k
            # eigenvectors of Syx Sxx^+ Sxy (the left singular vectors of the fitted values P_ols X).
            P_ols = self.Syx @ np.linalg.pinv(self.Sxx, hermitian=True)
            M = P_ols @ self.Syx.T
            M = 0.5 * (M + M.T)
            eigval, eigvec = np.linalg.eigh(M)
            order = np.argsort(eigval)[::-1]
            eigval, eigvec = eigval[order], eigvec[:, order]
            k = min(self.rank_cap, eigval.shape[0])
            Uk = eigvec[:, :k]
            P_star = Uk @ (Uk.T @ P_ols)
            best = max(0.0, 0.5 * (self.yy - float(np.sum(eigval[:k]))))
            self._optimum = (P_star, best, eigval)
        return self._optimum

    @property
    def optimum(self) -> np.ndarray:
        """The global optimum ``P* (d_N, d_0)`` over products of rank <= ``rank_cap`` (reduced-rank
        regression; ordinary least squares when the widths do not cap the rank)."""
        return self._solve_optimum()[0]

    @property
    def optimal_loss(self) -> float:
        """``1/2 (||Y||^2 - sum_{i <= k} lambda_i)``, lambda the eigenvalues of ``Syx Sxx^+ Sxy``."""
        return self._solve_optimum()[1]

    @property
    def regression_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of ``Syx Sxx^+ Sxy`` (descending): the loss each rank-one direction removes."""
        return self._solve_optimum()[2]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "widths": list(self.widths),
            "n": self.n,
            "batch_size": self.batch_size,
            "rank_rtol": self.rank_rtol,
            "rank_atol": self.rank_atol,
        }

    # -- initialisations -------------------------------------------------------------------------
    # Each returns ``(n_params,)``, or ``(batch, n_params)`` with a batch size; ``seed`` and ``batch``
    # are keyword-only (positionally they still work one release, with a DeprecationWarning).

    def initial_point(
        self,
        width: int | None = None,
        scale: float | None = None,
        *,
        seed: int | None,
        batch: int | None = None,
        kind: str = "small",
        rank: int | None = None,
    ) -> np.ndarray:
        """A start ``(n_params,)`` (``batch``: ``(batch, n_params)``) float64 drawn by one of the
        network's initialisations, the one way every problem draws a start:

        * ``kind="small"`` (default): ``W_i = scale * N(0, 1)`` (:meth:`small_init`), the values of
          :meth:`Problem.initial_point` and ``trajcore.small_init((batch, n_params), scale, seed=seed)``;
        * ``kind="default"``: PyTorch's ``nn.Linear`` init (:meth:`default_init`), no ``scale``;
        * ``kind="truncated"``: each layer truncated to ``rank`` singular values
          (:meth:`truncated_init`; ``scale`` as there);
        * ``kind="aligned"``: balanced rank-``rank`` layers of singular values ``scale``, default 1
          (:meth:`aligned_init`).

        ``width`` is not used (the layer widths are the network's): it is there so that every
        problem is called alike, ``problem.initial_point(width, scale, seed=seed)``.
        """
        if width is not None:
            as_positive_int("width", width)
        if kind not in _INIT_KINDS:
            raise ValueError(f"kind: expected one of {', '.join(map(repr, _INIT_KINDS))}, got {kind!r}")
        if (rank is None) != (kind in ("small", "default")):
            raise ValueError(f"rank: kind={kind!r} " + ("takes no rank" if rank is not None else "needs a rank"))
        if kind == "small":
            if scale is None:
                raise ValueError("scale: kind='small' draws scale * N(0, 1); give a scale")
            return self.small_init(scale, seed=seed, batch=batch)
        if kind == "default":
            if scale is not None:
                raise ValueError("scale: kind='default' (PyTorch's init) has its own scale; give none")
            return self.default_init(seed=seed, batch=batch)
        assert rank is not None
        if kind == "truncated":
            return self.truncated_init(rank, seed=seed, batch=batch, scale=scale)
        return self.aligned_init(rank, 1.0 if scale is None else scale, seed=seed, batch=batch)

    def _draw(self, seed: int | None, batch: int | None, draw_layer: Any) -> np.ndarray:
        rng, count = _batch_rngs(seed, batch)
        check_allocation("init", 8.0 * count * self.n_params)
        out = np.empty((count, self.n_params))
        for b in range(count):
            out[b] = np.concatenate([draw_layer(rng, shape).ravel() for shape in self.layer_shapes])
        return out if batch is not None else out[0]

    @old_spellings(keyword_only=("seed", "batch"))
    def default_init(self, *, seed: int | None = 0, batch: int | None = None) -> np.ndarray:
        """PyTorch's default ``nn.Linear`` init: ``W_i ~ U(-1/sqrt(d_{i-1}), 1/sqrt(d_{i-1}))``.

        Returns ``(n_params,)``, or ``(batch, n_params)`` with a batch size.
        """
        return self._draw(seed, batch, lambda rng, s: rng.uniform(-1.0, 1.0, size=s) / np.sqrt(s[1]))

    @old_spellings(keyword_only=("seed", "batch"))
    def small_init(self, scale: float, *, seed: int | None = 0, batch: int | None = None) -> np.ndarray:
        """``W_i = scale * N(0, 1)``: ``(n_params,)`` or ``(batch, n_params)``."""
        scale = as_positive_float("scale", scale, allow_zero=True)
        return self._draw(seed, batch, lambda rng, s: scale * rng.standard_normal(s))

    @old_spellings(keyword_only=("seed", "batch"))
    def truncated_init(
        self, rank: int, *, seed: int | None = 0, batch: int | None = None, scale: float | None = None
    ) -> np.ndarray:
        """Each layer drawn independently (default init, or ``scale * N(0, 1)``) and truncated by SVD to
        its top ``rank`` singular values -- Paper B's start. Layers of rank r generally span different
        subspaces, so ``dim S_k = min(d_k, 2 r)`` while ``rank P <= r``."""
        rank = as_nonnegative_int("rank", rank)

        def draw(rng: np.random.Generator, s: tuple[int, int]) -> np.ndarray:
            W = rng.uniform(-1.0, 1.0, size=s) / np.sqrt(s[1]) if scale is None else scale * rng.standard_normal(s)
            U, sv, Vt = np.linalg.svd(W, full_matrices=False)
            sv[rank:] = 0.0
            return (U * sv) @ Vt

        if scale is not None:
            as_positive_float("scale", scale)
        return self._draw(seed, batch, draw)

    @old_spellings(keyword_only=("seed", "batch"))
    def aligned_init(
        self, rank: int, scale: float = 1.0, *, seed: int | None = 0, batch: int | None = None
    ) -> np.ndarray:
        """Balanced rank-r start: ``W_i = U_i diag(scale) U_{i-1}^T`` with ``U_i (d_i, r)`` random
        orthonormal columns, so ``W_{j+1}^T W_{j+1} = W_j W_j^T`` exactly, ``dim S_k = r`` and
        ``rank P = r``."""
        rank = as_positive_int("rank", rank)
        if rank > self.rank_cap:
            raise ValueError(f"rank: must be <= min(widths) = {self.rank_cap}, got {rank}")
        scale = as_positive_float("scale", scale)
        rng, count = _batch_rngs(seed, batch)
        out = np.empty((count, self.n_params))
        for b in range(count):
            bases = [np.linalg.qr(rng.standard_normal((d, rank)))[0] for d in self.widths]
            out[b] = np.concatenate([(scale * bases[i + 1] @ bases[i].T).ravel() for i in range(self.n_layers)])
        return out if batch is not None else out[0]

    # -- recording -------------------------------------------------------------------------------

    def _groups(self, request: ObservableRequest) -> tuple[str, ...]:
        if request is None or request is False:
            return ()
        if request is True or (isinstance(request, str) and request == "all"):
            return OBSERVABLE_GROUPS
        if isinstance(request, str) and request == "spectrum":
            return _SPECTRUM
        names = (request,) if isinstance(request, str) else tuple(request)
        for name in names:
            if name not in OBSERVABLE_GROUPS:
                raise ValueError(
                    f"coefficients: unknown observable group {name!r}; expected True, 'all', 'spectrum', "
                    f"None or names from {OBSERVABLE_GROUPS}"
                )
        return tuple(g for g in OBSERVABLE_GROUPS if g in names)

    def _group_size(self, group: str) -> int:
        N = self.n_layers
        return {
            "product_singular_values": min(self.widths[0], self.widths[-1]),
            "product_ranks": 3,
            "layer_ranks": N,
            "balancedness": N - 1,
            "subspace_dims": N - 1,
            "optimum_distance": 1,
        }[group]

    def observable_layout(self, request: ObservableRequest = True) -> dict[str, slice]:
        """Group name -> slice of the recorded observable vector for a ``Record.coefficients`` request."""
        layout, start = {}, 0
        for group in self._groups(request):
            size = self._group_size(group)
            layout[group] = slice(start, start + size)
            start += size
        return layout

    def coefficient_pairs(self, coefficients: ObservableRequest) -> np.ndarray:
        """Labels of the recorded values: ``(group index in OBSERVABLE_GROUPS, position in the group)``."""
        rows = [(OBSERVABLE_GROUPS.index(g), i) for g in self._groups(coefficients) for i in range(self._group_size(g))]
        return np.array(rows, dtype=np.int64).reshape(-1, 2)

    def observable_labels(self, pairs: np.ndarray) -> tuple[str, ...]:
        """``group[i]`` for position i of each observable group (see :data:`OBSERVABLE_GROUPS`)."""
        return tuple(f"{OBSERVABLE_GROUPS[g]}[{i}]" for g, i in pairs.tolist())

    def observables(self, trajectory: Records) -> dict[str, np.ndarray]:
        """Named views of a run's records: e.g. ``out["product_singular_values"]`` is ``(.., R, k)``;
        ``product_ranks`` is split into ``numerical_rank``, ``effective_rank``, ``stable_rank``
        (``(.., R)``) and ``optimum_distance`` is ``(.., R)``."""
        if not (hasattr(trajectory, "coefficients") and hasattr(trajectory, "coefficient_pairs")):
            raise TypeError(f"trajectory: expected a Trajectory, got {type(trajectory).__name__}")
        pairs = trajectory.coefficient_pairs
        values = trajectory.coefficients
        out: dict[str, np.ndarray] = {}
        for index, group in enumerate(OBSERVABLE_GROUPS):
            cols = np.flatnonzero(pairs[:, 0] == index) if pairs.size else np.zeros(0, dtype=int)
            if cols.size == 0:
                continue
            block = values[..., cols]
            if group == "product_ranks":
                out["numerical_rank"] = block[..., 0]
                out["effective_rank"] = block[..., 1]
                out["stable_rank"] = block[..., 2]
            elif group == "optimum_distance":
                out[group] = block[..., 0]
            else:
                out[group] = block
        return out

    def build_kernel(self, width: int, coefficients: ObservableRequest) -> Any:
        bits = 0
        for group in self._groups(coefficients):
            bits |= 1 << OBSERVABLE_GROUPS.index(group)
        optimum = self.optimum if bits & (1 << OBSERVABLE_GROUPS.index("optimum_distance")) else None
        return _core.DeepLinearNetworkKernel(
            list(self.widths),
            np.ascontiguousarray(self.X.T),
            np.ascontiguousarray(self.Y.T),
            self.batch_size,
            0.0 if self.rank_rtol is None else self.rank_rtol,
            0.0 if self.rank_atol is None else self.rank_atol,
            bits,
            optimum,
        )
