"""誤差逆伝播法のレイヤー（畳み込み・プーリングを含む）/ layers with forward and backward passes.

各レイヤーは forward で逆伝播に必要な値を覚えておき、backward で勾配を返す。
Each layer keeps what its backward pass needs, so a network is just a list of layers.
"""

from __future__ import annotations

import numpy as np

from .functions import cross_entropy_error, softmax
from .util import col2im, conv_output_size, im2col


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


class Convolution:
    """畳み込み層。im2col で入力を並べ替え、フィルターとの積を行列の積 1 回で計算する。

    W: (FN, C, FH, FW) — FN 枚のフィルター。b: (FN,)。
    """

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0) -> None:
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x_shape: tuple[int, ...] = ()
        self.col: np.ndarray | None = None
        self.col_W: np.ndarray | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        FN, _, FH, FW = self.W.shape
        N, _, H, W = x.shape
        out_h = conv_output_size(H, FH, self.stride, self.pad)
        out_w = conv_output_size(W, FW, self.stride, self.pad)

        col = im2col(x, FH, FW, self.stride, self.pad)
        col_W = self.W.reshape(FN, -1).T
        out = col @ col_W + self.b
        out = out.reshape(N, out_h, out_w, FN).transpose(0, 3, 1, 2)

        self.x_shape = x.shape
        if train_flg:  # 逆伝播に必要なときだけ覚える（予測時のメモリを節約）
            self.col, self.col_W = col, col_W
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.col is not None and self.col_W is not None
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)

        self.db = np.sum(dout, axis=0)
        self.dW = (self.col.T @ dout).T.reshape(FN, C, FH, FW)

        dcol = dout @ self.col_W.T
        return col2im(dcol, self.x_shape, FH, FW, self.stride, self.pad)


class Pooling:
    """Max プーリング層。im2col で各窓を 1 行に並べ、行ごとの最大値をとる。"""

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> None:
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x_shape: tuple[int, ...] = ()
        self.arg_max: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        N, C, H, W = x.shape
        out_h = conv_output_size(H, self.pool_h, self.stride, self.pad)
        out_w = conv_output_size(W, self.pool_w, self.stride, self.pad)

        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)  # 1 行 = 1 つの窓（1 チャンネル分）

        # np.max(col, axis=1) と同じ。長さ 4 の軸での max は遅いので、列どうしの np.maximum を重ねる。
        out = col[:, 0].copy()
        for k in range(1, col.shape[1]):
            np.maximum(out, col[:, k], out=out)
        out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)

        self.x_shape = x.shape
        if train_flg:  # 逆伝播で勾配を流す先（各窓で最大だった位置）
            self.arg_max = np.argmax(col, axis=1)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.arg_max is not None
        dout = dout.transpose(0, 2, 3, 1)

        pool_size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, pool_size), dtype=dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max] = dout.ravel()  # 最大だった画素にだけ勾配を流す

        dcol = dmax.reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)
        return col2im(dcol, self.x_shape, self.pool_h, self.pool_w, self.stride, self.pad)
