"""Check the synthetic data set is about as hard as the course's: train the trainees' models on it.

The course's first assignment is a plain NumPy MLP and the second a small CNN. For the synthetic
set to be a fair stand-in, a quick MLP should land well below 100 % on the test split (aim:
75-90 %) and a small CNN should do clearly better (aim: at least 5 points more). This script trains
both, in NumPy only, and prints train/test accuracy; tune the writer and jitter parameters in
``scorer/dataset`` until the figures sit in range.

    .venv/bin/python bench/calibrate_dataset.py [--seed 0] [--epochs 20] [--no-cnn]
"""

import argparse
import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from scorer.classes import NUM_CLASSES
from scorer.dataset import TEST_WRITERS, TRAIN_WRITERS, make_dataset, make_split, writers_for

Array = NDArray[np.float64]


class Adam:
    """Adam over a list of parameter arrays, updated in place."""

    def __init__(self, params: list[Array], lr: float = 1e-3) -> None:
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[Array]) -> None:
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            m_hat = m / (1 - 0.9**self.t)
            v_hat = v / (1 - 0.999**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


class SGD:
    """Plain mini-batch SGD, as in the course's first MLP exercise."""

    def __init__(self, params: list[Array], lr: float = 0.1) -> None:
        self.params, self.lr = params, lr

    def step(self, grads: list[Array]) -> None:
        for p, g in zip(self.params, grads, strict=True):
            p -= self.lr * g


def softmax_grad(logits: Array, onehot: Array) -> Array:
    """Gradient of mean softmax cross-entropy with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    grad: Array = (e / e.sum(axis=1, keepdims=True) - onehot) / logits.shape[0]
    return grad


class MLP:
    """784-100-15, ReLU, softmax: the course's first assignment."""

    def __init__(self, rng: np.random.Generator, hidden: int = 100) -> None:
        self.w1 = rng.normal(0, np.sqrt(2 / 784), (784, hidden))
        self.b1 = np.zeros(hidden)
        self.w2 = rng.normal(0, np.sqrt(2 / hidden), (hidden, 15))
        self.b2 = np.zeros(15)
        self.params = [self.w1, self.b1, self.w2, self.b2]

    def forward(self, x: Array) -> Array:
        self.x = x.reshape(len(x), -1)
        self.h = np.maximum(self.x @ self.w1 + self.b1, 0)
        return self.h @ self.w2 + self.b2

    def backward(self, d: Array) -> list[Array]:
        dh = (d @ self.w2.T) * (self.h > 0)
        return [self.x.T @ dh, dh.sum(0), self.h.T @ d, d.sum(0)]


def im2col(x: Array, k: int) -> Array:
    """(n, c, h, w) -> (n * oh * ow, c * k * k) patches for a stride-1, no-padding convolution."""
    n, c, h, w = x.shape
    oh, ow = h - k + 1, w - k + 1
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # n, c, oh, ow, k, k
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)


class CNN:
    """conv 5x5 x 16 - ReLU - maxpool 2 - affine 100 - ReLU - affine 15: a small course-style CNN."""

    def __init__(self, rng: np.random.Generator, filters: int = 16, hidden: int = 100) -> None:
        self.k, self.f = 5, filters
        self.wc = rng.normal(0, np.sqrt(2 / 25), (25, filters))
        self.bc = np.zeros(filters)
        flat = filters * 12 * 12
        self.w1 = rng.normal(0, np.sqrt(2 / flat), (flat, hidden))
        self.b1 = np.zeros(hidden)
        self.w2 = rng.normal(0, np.sqrt(2 / hidden), (hidden, 15))
        self.b2 = np.zeros(15)
        self.params = [self.wc, self.bc, self.w1, self.b1, self.w2, self.b2]

    def forward(self, x: Array) -> Array:
        n = len(x)
        self.cols = im2col(x, self.k)
        conv = np.maximum(self.cols @ self.wc + self.bc, 0).reshape(n, 24, 24, self.f)
        self.conv = conv
        blocks = conv.reshape(n, 12, 2, 12, 2, self.f)
        pooled = blocks.max(axis=(2, 4))
        self.mask = blocks == pooled[:, :, None, :, None, :]
        self.flat = pooled.reshape(n, -1)
        self.h = np.maximum(self.flat @ self.w1 + self.b1, 0)
        logits: Array = self.h @ self.w2 + self.b2
        return logits

    def backward(self, d: Array) -> list[Array]:
        n = len(d)
        dh = (d @ self.w2.T) * (self.h > 0)
        dflat = dh @ self.w1.T
        dpool = dflat.reshape(n, 12, 1, 12, 1, self.f)
        dconv = (self.mask * dpool).reshape(n * 24 * 24, self.f) * (self.conv.reshape(-1, self.f) > 0)
        return [self.cols.T @ dconv, dconv.sum(0), self.flat.T @ dh, dh.sum(0), self.h.T @ d, d.sum(0)]


def accuracy(predict: Callable[[Array], Array], x: Array, onehot: Array, batch: int = 500) -> float:
    correct = 0
    for lo in range(0, len(x), batch):
        correct += int((predict(x[lo : lo + batch]).argmax(1) == onehot[lo : lo + batch].argmax(1)).sum())
    return correct / len(x)


def train(model: MLP | CNN, x: Array, t: Array, epochs: int, rng: np.random.Generator, optimizer: str) -> None:
    opt = Adam(model.params, 1e-3) if optimizer == "adam" else SGD(model.params, 0.1)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for lo in range(0, len(x), 100):
            idx = order[lo : lo + 100]
            opt.step(model.backward(softmax_grad(model.forward(x[idx]), t[idx])))


def main() -> None:
    parser = argparse.ArgumentParser(description="Train a NumPy MLP and CNN on the synthetic set.")
    parser.add_argument("--seed", type=int, default=0, help="data set seed")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--no-cnn", action="store_true")
    args = parser.parse_args()

    start = time.perf_counter()
    data = make_dataset(args.seed)
    print(f"generated 17,500 images in {time.perf_counter() - start:.2f} s")
    x_train = data.train_data.astype(np.float64) / 255
    x_test = data.test_data.astype(np.float64) / 255
    # Extra test-distribution images from the test writers the training set has / has not seen, to
    # show how much of the train/test gap is the unseen writers.
    writers = writers_for(args.seed)
    by_writer = {}
    for group, ids in (
        ("seen", sorted(set(TEST_WRITERS) & set(TRAIN_WRITERS))),
        ("unseen", sorted(set(TEST_WRITERS) - set(TRAIN_WRITERS))),
    ):
        x, t = make_split([100] * NUM_CLASSES, np.random.SeedSequence([args.seed, 99]), [writers[i] for i in ids])
        by_writer[group] = (x.astype(np.float64) / 255, t)
    rng = np.random.default_rng(1)

    models: list[tuple[str, MLP | CNN, str]] = [
        ("MLP 784-100-15, SGD 0.1", MLP(rng), "sgd"),
        ("MLP 784-100-15, Adam", MLP(rng), "adam"),
    ]
    if not args.no_cnn:
        models.append(("CNN conv5x5x16-pool-100-15, Adam", CNN(rng), "adam"))
    for name, model, optimizer in models:
        start = time.perf_counter()
        train(model, x_train, data.train_label, args.epochs, rng, optimizer)
        train_acc = accuracy(model.forward, x_train, data.train_label)
        test_acc = accuracy(model.forward, x_test, data.test_label)
        seen, unseen = (accuracy(model.forward, *by_writer[g]) for g in ("seen", "unseen"))
        print(
            f"{name}: train {train_acc:.2%}  test {test_acc:.2%}  "
            f"(test writers seen in training {seen:.2%}, unseen {unseen:.2%}; "
            f"{args.epochs} epochs, {time.perf_counter() - start:.1f} s)"
        )


if __name__ == "__main__":
    main()
