"""Datasets for the network experiments: real data that installs with scikit-learn, and synthetic data.

* :func:`digits` -- scikit-learn's bundled handwritten digits (1,797 images of 8 x 8 pixels, 10 classes;
  no download), split into train and test sets stratified by class.
* :func:`teacher_student` -- inputs from a standard normal, targets from a random teacher MLP.

Both return a :class:`Dataset` with one-hot (or real-valued) targets as float64 arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_nonnegative_int, as_positive_float, as_positive_int

__all__ = ["Dataset", "digits", "teacher_student"]


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
    rng = np.random.default_rng(seed)
    train_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for c in range(10):  # stratified: each class split in the same proportion
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(fraction * members.size))
        test_idx.append(members[:n_test])
        train_idx.append(members[n_test:])
    train = rng.permutation(np.concatenate(train_idx))
    test = np.sort(np.concatenate(test_idx))
    if n_train is not None:
        n_train = as_positive_int("n_train", n_train)
        if n_train > train.size:
            raise ValueError(f"n_train: at most {train.size} training images, got {n_train}")
        train = train[:n_train]
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
