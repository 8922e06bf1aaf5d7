"""誤差逆伝播法のレイヤー（畳み込み・Batch Normalization・プーリング）/ layers with forward and backward.

教科書のレイヤーそのままの書き方: forward は逆伝播に使う値（im2col の行列、入力、最大値の位置）を
毎回覚えておく。予測だけのときも覚えているので、500 枚を一度に通すと、次の 500 枚が来るまで各層の
大きな配列がメモリに残る。それも含めて、受講生のネットワークが採点で使うメモリと時間の見本になっている。
Written as the textbook writes them: each forward keeps what its backward needs, even when predicting.
"""

from __future__ import annotations

import numpy as np

from .functions import cross_entropy_error, softmax
from .util import col2im, conv_output_size, im2col


class Relu:
    def __init__(self) -> None:
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.mask is not None
        dout = dout.copy()
        dout[self.mask] = 0
        return dout


class Affine:
    """全結合層 y = xW + b。W と b は network.params の配列そのもの（コピーではない）を参照する。"""

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
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.x is not None
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape)


class SoftmaxWithLoss:
    """ソフトマックスと交差エントロピー誤差をまとめた最後の層（勾配は (y - t) / バッチサイズ）。"""

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


class BatchNormalization:
    """Batch Normalization（教科書 6.3 節）。畳み込みの出力 (N, C, H, W) は (N, C*H*W) にして、
    特徴（チャンネル × 位置）ごとに正規化する — 教科書のコードと同じ扱い。

    running_mean / running_var は network.params の配列そのもので、学習中にその場で更新する。
    だから params を pickle すれば、予測に要る平均と分散も一緒に保存される（教科書のように層の中だけに
    持っていると、保存し忘れて、予測のときに 0 と 0 で正規化してしまう）。
    """

    def __init__(
        self,
        gamma: np.ndarray,
        beta: np.ndarray,
        running_mean: np.ndarray,
        running_var: np.ndarray,
        momentum: float = 0.9,
    ) -> None:
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.running_mean = running_mean
        self.running_var = running_var
        self.input_shape: tuple[int, ...] = ()
        self.batch_size = 0
        self.xc: np.ndarray | None = None
        self.xn: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.dgamma: np.ndarray | None = None
        self.dbeta: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        self.input_shape = x.shape
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1)
        return self._forward(x, train_flg).reshape(*self.input_shape)

    def _forward(self, x: np.ndarray, train_flg: bool) -> np.ndarray:
        if train_flg:
            mu = x.mean(axis=0)
            xc = x - mu
            var = np.mean(xc**2, axis=0)
            std = np.sqrt(var + 10e-7)
            xn = xc / std

            self.batch_size = x.shape[0]
            self.xc = xc
            self.xn = xn
            self.std = std
            # その場で更新する（params の配列を置き換えない）
            self.running_mean *= self.momentum
            self.running_mean += (1 - self.momentum) * mu
            self.running_var *= self.momentum
            self.running_var += (1 - self.momentum) * var
        else:
            xc = x - self.running_mean
            xn = xc / np.sqrt(self.running_var + 10e-7)
        return self.gamma * xn + self.beta

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.xc is not None and self.xn is not None and self.std is not None
        if dout.ndim != 2:
            dout = dout.reshape(dout.shape[0], -1)
        self.dbeta = dout.sum(axis=0)
        self.dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        return dx.reshape(*self.input_shape)


class Convolution:
    """畳み込み層。im2col で入力を並べ替え、フィルターとの積を行列の積 1 回で計算する。

    W: (FN, C, FH, FW) — FN 枚のフィルター。b: (FN,)。
    """

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0) -> None:
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x: np.ndarray | None = None
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
        out = np.dot(col, col_W) + self.b
        out = out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)

        self.x = x
        self.col = col
        self.col_W = col_W
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.x is not None and self.col is not None and self.col_W is not None
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)

        self.db = np.sum(dout, axis=0)
        self.dW = np.dot(self.col.T, dout).transpose(1, 0).reshape(FN, C, FH, FW)

        dcol = np.dot(dout, self.col_W.T)
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)


class Pooling:
    """Max プーリング層。im2col で各窓を 1 行に並べ、行ごとの最大値をとる。"""

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> None:
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x: np.ndarray | None = None
        self.arg_max: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        N, C, H, W = x.shape
        out_h = conv_output_size(H, self.pool_h, self.stride, self.pad)
        out_w = conv_output_size(W, self.pool_w, self.stride, self.pad)

        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)

        arg_max = np.argmax(col, axis=1)
        out = np.max(col, axis=1)
        out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)

        self.x = x
        self.arg_max = arg_max
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        assert self.x is not None and self.arg_max is not None
        dout = dout.transpose(0, 2, 3, 1)

        pool_size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, pool_size), dtype=dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dmax = dmax.reshape((*dout.shape, pool_size))

        dcol = dmax.reshape(dmax.shape[0] * dmax.shape[1] * dmax.shape[2], -1)
        return col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)
