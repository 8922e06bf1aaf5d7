"""誤差逆伝播法のレイヤー / layers with forward and backward passes.

各レイヤーは forward で逆伝播に必要な値を覚えておき、backward で勾配を返す。
Each layer keeps what its backward pass needs, so a network is just a list of layers.
"""

from __future__ import annotations

import numpy as np

from .functions import cross_entropy_error, softmax


class Relu:
    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        # 教科書の out[mask] = 0 と同じ結果。真偽値の添字より np.maximum の方がずっと速い。
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.mask is not None
        return dout * self.mask


class Affine:
    """全結合層 y = xW + b。W と b は network.params の配列そのもの（コピーではない）を参照する。

    Sharing the arrays is what lets the optimizer update ``params`` in place and the layer see it.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.W = W
        self.b = b
        self.x: np.ndarray | None = None
        self.original_x_shape: tuple[int, ...] = ()
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.x is not None
        dx = dout @ self.W.T
        self.dW = self.x.T @ dout
        self.db = np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape)


class SoftmaxWithLoss:
    """ソフトマックスと交差エントロピー誤差をまとめた最後の層。

    Together their gradient is simply (y - t) / batch_size, which is why they are one layer.
    """

    def __init__(self) -> None:
        self.loss: float | None = None
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, t)
        return self.loss

    def backward(self, dout: float = 1) -> np.ndarray:
        assert self.y is not None and self.t is not None
        batch_size = self.y.shape[0]
        dx = self.y.copy()
        if self.t.size == self.y.size:  # one-hot
            dx -= self.t
        else:  # クラス番号
            dx[np.arange(batch_size), self.t] -= 1
        return dx * (dout / batch_size)
