"""A trainee-style batch-norm model, trained here (trusted code) and pickled the way NumPy 1.x did.

The network is Affine → BatchNorm → ReLU → Affine (``common/network.py``, the trainee's package).
Its first layer is a fixed random projection and only the last layer is trained (softmax regression),
which takes seconds and is all these tests need: a model that is right on its training images when
fed ``x / 255`` as in training, and about as right as guessing when the ``/ 255`` is forgotten — the
batch norm's running statistics no longer match, as with the real batch-norm CNN this copies.
"""

from __future__ import annotations

import pickle

import numpy as np

HIDDEN = 256
# NumPy 2 pickles arrays through numpy._core; NumPy 1.x (what trainees trained with) wrote
# numpy.core, which NumPy 2 still loads through a compatibility alias.
NUMPY2_MODULE = b"cnumpy._core.multiarray\n"
NUMPY1_MODULE = b"cnumpy.core.multiarray\n"


def train(images: np.ndarray, ids: np.ndarray, *, seed: int = 0, steps: int = 300) -> dict[str, np.ndarray]:
    """Parameters of the network for images (N, 1, 28, 28) 0-255 and class ids (N,)."""
    rng = np.random.default_rng(seed)
    x = images.reshape(len(images), -1).astype(np.float64) / 255
    # A slight positive mean, as trained first layers on mostly-white images tend to have: it is what
    # makes the unscaled input (255 times larger) swamp the batch norm.
    w1 = rng.normal(0.015, 1.0 / np.sqrt(x.shape[1]), (x.shape[1], HIDDEN))
    b1 = np.zeros(HIDDEN)
    z = x @ w1 + b1
    mean, var = z.mean(axis=0), z.var(axis=0)
    h = np.maximum(0.0, (z - mean) / np.sqrt(var + 10e-7))
    onehot = np.eye(15)[ids]
    w2 = np.zeros((HIDDEN, 15))
    b2 = np.zeros(15)
    for _ in range(steps):  # full-batch gradient descent on the softmax cross-entropy
        logits = h @ w2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - onehot) / len(x)
        w2 -= 0.5 * (h.T @ grad)
        b2 -= 0.5 * grad.sum(axis=0)
    return {
        "W1": w1,
        "b1": b1,
        "gamma1": np.ones(HIDDEN),
        "beta1": np.zeros(HIDDEN),
        "running_mean1": mean,
        "running_var1": var,
        "W2": w2,
        "b2": b2,
    }


def numpy1_pickle(obj: object) -> bytes:
    """``obj`` pickled as NumPy 1.x wrote it (protocol 2: module paths are plain text lines)."""
    data = pickle.dumps(obj, protocol=2)
    assert NUMPY2_MODULE in data
    return data.replace(NUMPY2_MODULE, NUMPY1_MODULE)
