"""Type stubs of the compiled core (csrc/bind_*.cpp).

Checked against the compiled module by `python -m mypy.stubtest trajcore._core` (.ci/run). pybind11
functions carry no inspectable signature, so stubtest cannot compare their parameters: the names,
defaults and keyword-ness below are the py::arg lists of csrc/bind_*.cpp (the runtime docstrings,
`help(trajcore._core)`, show them too) and must be kept in step by hand. Every argument of a pybind11
function can be passed by keyword.
"""

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, overload

import numpy as np
from numpy.typing import NDArray
from typing_extensions import CapsuleType

# Stub-only stand-ins (private names, absent from trajcore._core) for pybind11's metaclass and base class,
# pybind11_builtins.pybind11_type and pybind11_builtins.pybind11_object: every class below is built by them.
class _pybind11_type(type): ...
class _pybind11_object(metaclass=_pybind11_type): ...

# csrc/bind_core.cpp
scipy_dgemm_signature: str

def build_info() -> dict[str, Any]: ...
def register_blas_dgemm(capsule: CapsuleType, threshold: int) -> None: ...
def normal_draws(seed: int, trajectory: int, step: int, stream: int, count: int) -> NDArray[np.float64]: ...
def uniform_draws(seed: int, trajectory: int, step: int, stream: int, count: int) -> NDArray[np.float64]: ...

class NoiseKind(_pybind11_object):
    """A pybind11 enum (py::enum_), not an enum.Enum: it is not iterable; `NoiseKind(value)` takes any int."""

    gradient: ClassVar[NoiseKind]  # = 1
    langevin: ClassVar[NoiseKind]  # = 2
    perturbed_gd: ClassVar[NoiseKind]  # = 3
    singular_value_imputation: ClassVar[NoiseKind]  # = 4
    weight_noise: ClassVar[NoiseKind]  # = 5
    dropconnect: ClassVar[NoiseKind]  # = 6
    dropout: ClassVar[NoiseKind]  # = 7
    input_noise: ClassVar[NoiseKind]  # = 8
    label_noise: ClassVar[NoiseKind]  # = 9
    __members__: ClassVar[dict[str, NoiseKind]]
    def __init__(self, value: int) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    def __int__(self, /) -> int: ...
    def __index__(self, /) -> int: ...
    def __hash__(self, /) -> int: ...
    @overload
    def __eq__(self, other: NoiseKind, /) -> bool: ...
    @overload
    def __eq__(self, other: object, /) -> bool: ...
    @overload
    def __ne__(self, other: NoiseKind, /) -> bool: ...
    @overload
    def __ne__(self, other: object, /) -> bool: ...
    def __getstate__(self, /) -> int: ...
    def __setstate__(self, state: int, /) -> None: ...

class NoiseTerm(_pybind11_object):
    def __init__(
        self,
        kind: NoiseKind,
        scale: float = 0.0,
        anneal: float = 0.0,
        probability: float = 0.0,
        threshold: float = 0.0,
        radius: float = 0.0,
        interval: int = 0,
        jitter: float = 0.0,
    ) -> None: ...
    # Read-only (def_readonly): a term is checked once, when it is built.
    @property
    def kind(self) -> NoiseKind: ...
    @property
    def scale(self) -> float: ...
    @property
    def anneal(self) -> float: ...
    @property
    def probability(self) -> float: ...
    @property
    def threshold(self) -> float: ...
    @property
    def radius(self) -> float: ...
    @property
    def interval(self) -> int: ...
    @property
    def jitter(self) -> float: ...

# csrc/bind_kernel.hpp
class _DrivenKernel(_pybind11_object):
    """Stub-only base: the surface every kernel class gets from bind_kernel (csrc/bind_kernel.hpp)."""

    # x (B, n), velocity (B, n) or None, diverged_at / last_perturbation / loss_limit (B,), loss (B, R),
    # observations (B, R, K), iterates (B, R, n) or None, lr (total_steps,), record_steps (R,): updated in place.
    def run_chunk(
        self,
        x: NDArray[np.float64],
        velocity: NDArray[np.float64] | None,
        diverged_at: NDArray[np.int64],
        last_perturbation: NDArray[np.int64],
        loss_limit: NDArray[np.float64],
        loss: NDArray[np.float64],
        observations: NDArray[np.float64],
        iterates: NDArray[np.float64] | None,
        lr: NDArray[np.float64],
        record_steps: NDArray[np.int64],
        t0: int,
        t1: int,
        total_steps: int,
        momentum: float,
        noise: Sequence[NoiseTerm],
        seed: int,
        trajectory_offset: int,
        n_threads: int,
    ) -> None: ...
    def losses(self, x: NDArray[np.float64], n_threads: int = 1) -> NDArray[np.float64]: ...  # x (B, n) -> (B,)
    @property
    def state_size(self) -> int: ...
    @property
    def state_transposed(self) -> bool: ...
    @property
    def n_observables(self) -> int: ...
    # names of the model-level noise kinds the kernel reads (a static property of the class)
    model_noise: ClassVar[list[str]]
    # x: state_size values, any shape
    def loss_and_grad(self, x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]: ...
    def observe(self, x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]: ...

# csrc/bind_matrix_factorization.cpp
class SymmetricMatrixFactorizationKernel(_DrivenKernel):
    # One binding, whose required `basis` and `pairs` follow defaulted arguments (pybind11 allows it, a
    # Python signature cannot say it): the overloads spell the calls it accepts, all positional up to
    # `pairs`, or `basis` and `pairs` by keyword. Target: dense (d, d), V (d, r) with sigma (r,), or diagonal.
    @overload
    def __init__(
        self,
        d: int,
        width: int,
        dense: NDArray[np.float64] | None,
        V: NDArray[np.float64] | None,
        sigma: NDArray[np.float64] | None,
        basis: NDArray[np.float64],  # (d, q)
        pairs: NDArray[np.int64],  # (K, 2)
        diagonal: NDArray[np.float64] | None = None,
        transposed: bool = False,
    ) -> None: ...
    @overload
    def __init__(
        self,
        d: int,
        width: int,
        dense: NDArray[np.float64] | None = None,
        V: NDArray[np.float64] | None = None,
        sigma: NDArray[np.float64] | None = None,
        *,
        basis: NDArray[np.float64],
        pairs: NDArray[np.int64],
        diagonal: NDArray[np.float64] | None = None,
        transposed: bool = False,
    ) -> None: ...

# Q (n, n), X (B, n, w) -> (B, n, w)
def change_basis(
    Q: NDArray[np.float64], X: NDArray[np.float64], transpose: bool, n_threads: int = 1
) -> NDArray[np.float64]: ...

class AsymmetricMatrixFactorizationKernel(_DrivenKernel):
    # As SymmetricMatrixFactorizationKernel: one binding, required arguments after defaulted ones.
    # Target (rows, cols): dense, left (rows, r) weights (r,) right (cols, r), or diagonal (min(rows, cols),).
    @overload
    def __init__(
        self,
        rows: int,
        cols: int,
        width: int,
        dense: NDArray[np.float64] | None,
        left: NDArray[np.float64] | None,
        weights: NDArray[np.float64] | None,
        right: NDArray[np.float64] | None,
        left_basis: NDArray[np.float64],  # (rows, q_l)
        right_basis: NDArray[np.float64],  # (cols, q_r)
        pairs: NDArray[np.int64],  # (K, 2)
        diagonal: NDArray[np.float64] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        rows: int,
        cols: int,
        width: int,
        dense: NDArray[np.float64] | None = None,
        left: NDArray[np.float64] | None = None,
        weights: NDArray[np.float64] | None = None,
        right: NDArray[np.float64] | None = None,
        *,
        left_basis: NDArray[np.float64],
        right_basis: NDArray[np.float64],
        pairs: NDArray[np.int64],
        diagonal: NDArray[np.float64] | None = None,
    ) -> None: ...

# csrc/bind_matrix_sensing.cpp
class MatrixSensingKernel(_DrivenKernel):
    def __init__(
        self,
        measurements: NDArray[np.float64],  # (m, d, d), each symmetric
        observations: NDArray[np.float64],  # (m,)
        width: int,
        basis: NDArray[np.float64],  # (d, q)
        pairs: NDArray[np.int64],  # (K, 2)
        symmetry_tol: float = 1e-10,
    ) -> None: ...

# csrc/bind_python_kernel.cpp
class PythonKernel(_DrivenKernel):
    # loss_and_grad(x (n,)) -> (loss, grad (n values)); observe(x (n,)) -> (loss, observables (K values));
    # x a new float64 array per call; `name` prefixes the messages about a wrong result.
    def __init__(
        self,
        loss_and_grad: Callable[[NDArray[np.float64]], tuple[Any, Any]],
        observe: Callable[[NDArray[np.float64]], tuple[Any, Any]],
        state_size: int,
        n_observables: int,
        name: str = "PythonKernel",
    ) -> None: ...

# csrc/bind_projection.cpp
# snapshots (T, N), basis (N, k) -> (T, k)
def project(
    snapshots: NDArray[np.float64], basis: NDArray[np.float64], scale: float, n_threads: int = 1
) -> NDArray[np.float64]: ...

# snapshots (T, n, C), basis (n, k) -> (T, C, k)
def project_per_output(
    snapshots: NDArray[np.float64], basis: NDArray[np.float64], scale: float, n_threads: int = 1
) -> NDArray[np.float64]: ...

# snapshot (N,), basis (N, k) -> out[row] of out (T, k)
def project_into(
    snapshot: NDArray[np.float64], basis: NDArray[np.float64], scale: float, out: NDArray[np.float64], row: int
) -> None: ...

# csrc/bind_linear_network.cpp
class DeepLinearNetworkKernel(_DrivenKernel):
    def __init__(
        self,
        widths: Sequence[int],
        X_rows: NDArray[np.float64],  # (n, widths[0])
        Y_rows: NDArray[np.float64],  # (n, widths[-1])
        batch_size: int,
        rank_rtol: float,
        rank_atol: float,
        groups: int,
        optimum: NDArray[np.float64] | None = None,
    ) -> None: ...

# One binding returning s (k,), or (U (rows, k), s, V (cols, k)) when vectors is true.
@overload
def jacobi_svd(A: NDArray[np.float64], vectors: Literal[False] = False) -> NDArray[np.float64]: ...
@overload
def jacobi_svd(
    A: NDArray[np.float64], vectors: Literal[True]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]: ...
@overload
def jacobi_svd(A: NDArray[np.float64], vectors: bool = False) -> Any: ...

# csrc/bind_tensor.cpp
def packed_size(d: int, order: int) -> int: ...
def packed_multiplicities(d: int, order: int) -> NDArray[np.float64]: ...
def dense_asymmetry(T: NDArray[np.float64], d: int, order: int) -> float: ...

class SymmetricTensorCore(_pybind11_object):
    # No py::init: pybind11_object.__init__ raises TypeError ("No constructor defined!"); use from_*.
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...
    @staticmethod
    def from_factors(Z: NDArray[np.float64], c: NDArray[np.float64], order: int) -> SymmetricTensorCore: ...
    @staticmethod
    def from_dense(T: NDArray[np.float64], d: int, order: int) -> SymmetricTensorCore: ...
    @staticmethod
    def from_packed(T: NDArray[np.float64], d: int, order: int) -> SymmetricTensorCore: ...
    @property
    def dim(self) -> int: ...
    @property
    def order(self) -> int: ...
    @property
    def rank(self) -> int: ...
    @property
    def storage(self) -> str: ...  # "factored", "dense" or "packed"
    @property
    def norm_squared(self) -> float: ...
    def to_dense(self) -> NDArray[np.float64]: ...  # flat (d**order,)
    def to_packed(self) -> NDArray[np.float64]: ...  # flat (packed_size(d, order),)
    def as_dense(self) -> SymmetricTensorCore: ...
    def as_packed(self) -> SymmetricTensorCore: ...
    def contract(self, U: NDArray[np.float64], n_threads: int = 1) -> NDArray[np.float64]: ...  # U (d, m) -> (d, m)
    def full_contract(self, U: NDArray[np.float64], n_threads: int = 1) -> NDArray[np.float64]: ...  # -> (m,)

class OrthogonalTensorDecompositionKernel(_DrivenKernel):
    # basis (d, q)
    def __init__(self, target: SymmetricTensorCore, width: int, basis: NDArray[np.float64], halved: bool) -> None: ...
