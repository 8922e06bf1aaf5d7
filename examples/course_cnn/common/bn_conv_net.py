"""カタカナ認識用の CNN（Batch Normalization つき）/ a course-sized convolutional network.

    conv(32, 3×3, pad 1) → BN → ReLU → pool(2×2)      28×28 → 14×14
    conv(32, 3×3, pad 1) → BN → ReLU → pool(2×2)      14×14 → 7×7
    conv(64, 3×3, pad 1) → BN → ReLU                  7×7
    Affine(64·7·7 → 100) → BN → ReLU → Affine(100 → 15) → Softmax

受講生がこの課題で作る大きさのネットワーク: 畳み込み 3 層（32〜64 枚のフィルター）、各層の後に
Batch Normalization。14,500 枚の予測に 1 コアで数十秒かかり、500 枚ずつの予測で 1 GB 以上のメモリを使う。
The size of network trainees build for this assignment: it costs the scoring workers what theirs do.

パラメータは ``params`` 辞書（W1..W5, b1..b5, gamma1..gamma4, beta1..beta4, running_mean1..4,
running_var1..4）だけを保存し、読み込む側はこのクラスで同じ形のネットワークを作ってから load_params する。
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np

from .layers import Affine, BatchNormalization, Convolution, Pooling, Relu, SoftmaxWithLoss
from .util import conv_output_size


class BatchNormConvNet:
    """``pools[i]``: whether a 2×2 max pooling follows convolution i.

    ``dtype`` is the parameters' type: float64 by default, as the textbook's ``np.random.randn`` gives;
    float64 parameters make the whole forward pass float64, whatever the input's type.
    """

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (1, 28, 28),
        conv_channels: tuple[int, ...] = (32, 32, 64),
        pools: tuple[bool, ...] = (True, True, False),
        filter_size: int = 3,
        hidden_size: int = 100,
        output_size: int = 15,
        seed: int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        if len(pools) != len(conv_channels):
            raise ValueError("pools needs one entry per convolution")
        self.pad = filter_size // 2  # "same" パディング: 畳み込みで画像が縮まない
        self.pools = pools
        rng = np.random.default_rng(seed)

        channels, size = input_dim[0], input_dim[1]
        self.params: dict[str, np.ndarray] = {}
        features: list[int] = []  # 各 Batch Normalization が正規化する特徴の数
        idx = 0
        for idx, (out_channels, pool) in enumerate(zip(conv_channels, pools, strict=True), start=1):
            size = conv_output_size(size, filter_size, 1, self.pad)
            fan_in = channels * filter_size * filter_size
            self._init(rng, idx, (out_channels, channels, filter_size, filter_size), fan_in, dtype)
            features.append(out_channels * size * size)  # BN は畳み込みの直後（プーリングの前）
            if pool:
                size //= 2
            channels = out_channels
        idx += 1
        self._init(rng, idx, (channels * size * size, hidden_size), channels * size * size, dtype)
        features.append(hidden_size)
        self._init(rng, idx + 1, (hidden_size, output_size), hidden_size, dtype)
        for i, count in enumerate(features, start=1):
            self.params[f"gamma{i}"] = np.ones(count, dtype=dtype)
            self.params[f"beta{i}"] = np.zeros(count, dtype=dtype)
            self.params[f"running_mean{i}"] = np.zeros(count, dtype=dtype)
            self.params[f"running_var{i}"] = np.zeros(count, dtype=dtype)
        self.n_conv = len(conv_channels)

        self.layers: OrderedDict[str, Any] = OrderedDict()
        self._build_layers()
        self.last_layer = SoftmaxWithLoss()

    def _init(self, rng: np.random.Generator, idx: int, shape: tuple[int, ...], fan_in: int, dtype: Any) -> None:
        scale = math.sqrt(2.0 / fan_in)  # He の初期値（ReLU の前の層に）
        self.params[f"W{idx}"] = (scale * rng.standard_normal(shape)).astype(dtype)
        self.params[f"b{idx}"] = np.zeros(shape[0] if len(shape) == 4 else shape[1], dtype=dtype)

    def _build_layers(self) -> None:
        """レイヤーを params の配列で作り直す（load_params の後にも呼ぶ）。"""
        p = self.params
        self.layers.clear()
        for i in range(1, self.n_conv + 1):
            self.layers[f"Conv{i}"] = Convolution(p[f"W{i}"], p[f"b{i}"], stride=1, pad=self.pad)
            self.layers[f"BatchNorm{i}"] = self._batch_norm(i)
            self.layers[f"Relu{i}"] = Relu()
            if self.pools[i - 1]:
                self.layers[f"Pool{i}"] = Pooling(pool_h=2, pool_w=2, stride=2)
        hidden = self.n_conv + 1
        self.layers["Affine1"] = Affine(p[f"W{hidden}"], p[f"b{hidden}"])
        self.layers[f"BatchNorm{hidden}"] = self._batch_norm(hidden)
        self.layers[f"Relu{hidden}"] = Relu()
        self.layers["Affine2"] = Affine(p[f"W{hidden + 1}"], p[f"b{hidden + 1}"])

    def _batch_norm(self, i: int) -> BatchNormalization:
        p = self.params
        return BatchNormalization(p[f"gamma{i}"], p[f"beta{i}"], p[f"running_mean{i}"], p[f"running_var{i}"])

    def predict(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        """スコア（ソフトマックスの前の値）を返す / raw scores, shape (N, 15). x: (N, 1, 28, 28)."""
        for layer in self.layers.values():
            x = layer.forward(x, train_flg)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray, train_flg: bool = False) -> float:
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t)

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 100) -> float:
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        correct = 0
        for i in range(0, x.shape[0], batch_size):
            y = np.argmax(self.predict(x[i : i + batch_size]), axis=1)
            correct += int(np.sum(y == t[i : i + batch_size]))
        return correct / x.shape[0]

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """誤差逆伝播法で、学習するパラメータ（W, b, gamma, beta）の勾配を求める。

        running_mean / running_var には勾配がない（forward の中で Batch Normalization が更新する）。
        """
        self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)

        grads: dict[str, np.ndarray] = {}
        hidden = self.n_conv + 1
        weighted = [f"Conv{i}" for i in range(1, hidden)] + ["Affine1", "Affine2"]
        for idx, name in enumerate(weighted, start=1):
            grads[f"W{idx}"] = self.layers[name].dW
            grads[f"b{idx}"] = self.layers[name].db
        for i in range(1, hidden + 1):
            grads[f"gamma{i}"] = self.layers[f"BatchNorm{i}"].dgamma
            grads[f"beta{i}"] = self.layers[f"BatchNorm{i}"].dbeta
        return grads

    def load_params(self, params: dict[str, np.ndarray]) -> None:
        """保存しておいた params 辞書を読み込む。形が違えば、どこが違うかを言って止まる。"""
        for key, current in self.params.items():
            if key not in params:
                raise KeyError(f"モデルファイルに {key} がありません / {key} missing from the model file")
            value = np.asarray(params[key])
            if value.shape != current.shape:
                raise ValueError(
                    f"{key} の形が違います: ファイル {value.shape}, ネットワーク {current.shape} "
                    "（学習時と同じ層の大きさでネットワークを作ってください）"
                )
            self.params[key] = value.astype(current.dtype)  # 常にコピー: 読み込んだ配列を書き換えない
        self._build_layers()
