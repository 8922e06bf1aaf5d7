"""活性化関数と損失関数 / activation and loss functions."""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    """行ごとのソフトマックス。最大値を引いてから exp するのは、オーバーフローを防ぐため。"""
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def cross_entropy_error(y: np.ndarray, t: np.ndarray) -> float:
    """交差エントロピー誤差（バッチ平均）。t は one-hot でもクラス番号でもよい。

    The course's train_label.npy is one-hot, but class ids are easier to handle elsewhere, so both work.
    """
    if y.ndim == 1:
        y = y.reshape(1, -1)
        t = t.reshape(1, -1)
    if t.size == y.size:  # one-hot → クラス番号
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    # 1e-7 を足すのは log(0) = -inf を避けるため
    return float(-np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size)
