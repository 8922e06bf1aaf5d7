"""全結合の多層ニューラルネットワーク / a fully connected network: (Affine → ReLU) × n → Affine → Softmax.

パラメータは ``params`` 辞書（"W1", "b1", "W2", ... → NumPy 配列）にまとめてある。保存するのはこの辞書だけ
なので、読み込む側はこのクラスを import して同じ形のネットワークを作り、load_params で値を入れればよい。
Only the dict of arrays is saved, never the object: unpickling an object needs its class importable under
the same module path as when it was saved, which breaks as soon as the training notebook defined it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np

from .layers import Affine, Relu, SoftmaxWithLoss


class MultiLayerNet:
    def __init__(
        self,
        input_size: int = 784,
        hidden_size_list: list[int] | tuple[int, ...] = (100, 100),
        output_size: int = 15,
        weight_init_std: str | float = "he",
        seed: int | None = None,
        dtype: Any = np.float32,
    ) -> None:
        self.input_size = input_size
        self.hidden_size_list = list(hidden_size_list)
        self.output_size = output_size
        self.hidden_layer_num = len(self.hidden_size_list)
        self.params: dict[str, np.ndarray] = {}
        rng = np.random.default_rng(seed)

        all_size_list = [input_size, *self.hidden_size_list, output_size]
        for idx in range(1, len(all_size_list)):
            scale: float
            if weight_init_std in ("relu", "he"):
                scale = math.sqrt(2.0 / all_size_list[idx - 1])  # He の初期値（ReLU 向け）
            elif weight_init_std in ("sigmoid", "xavier"):
                scale = math.sqrt(1.0 / all_size_list[idx - 1])  # Xavier の初期値
            else:
                scale = float(weight_init_std)
            shape = (all_size_list[idx - 1], all_size_list[idx])
            self.params[f"W{idx}"] = (scale * rng.standard_normal(shape)).astype(dtype)
            self.params[f"b{idx}"] = np.zeros(all_size_list[idx], dtype=dtype)

        self.layers: OrderedDict[str, Any] = OrderedDict()
        self._build_layers()
        self.last_layer = SoftmaxWithLoss()

    def _build_layers(self) -> None:
        """レイヤーを params の配列で作り直す（load_params の後にも呼ぶ）。"""
        self.layers.clear()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers[f"Affine{idx}"] = Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])
            self.layers[f"Relu{idx}"] = Relu()
        idx = self.hidden_layer_num + 1
        self.layers[f"Affine{idx}"] = Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])

    def predict(self, x: np.ndarray, train_flg: bool = False) -> np.ndarray:
        """スコア（ソフトマックスの前の値）を返す / raw scores, shape (N, output_size)."""
        for layer in self.layers.values():
            x = layer.forward(x, train_flg)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray, train_flg: bool = False) -> float:
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t)

    def accuracy(self, x: np.ndarray, t: np.ndarray) -> float:
        y = np.argmax(self.predict(x), axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return float(np.mean(y == t))

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """誤差逆伝播法で全パラメータの勾配を求める / gradients by backpropagation."""
        self.loss(x, t, train_flg=True)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)

        grads: dict[str, np.ndarray] = {}
        for idx in range(1, self.hidden_layer_num + 2):
            grads[f"W{idx}"] = self.layers[f"Affine{idx}"].dW
            grads[f"b{idx}"] = self.layers[f"Affine{idx}"].db
        return grads

    def load_params(self, params: dict[str, np.ndarray]) -> None:
        """保存しておいた params 辞書を読み込む。形が違えば、どこが違うかを言って止まる。

        Failing loudly on a shape mismatch beats silently broadcasting a wrong-sized bias.
        """
        for key, current in self.params.items():
            if key not in params:
                raise KeyError(f"モデルファイルに {key} がありません / {key} missing from the model file")
            value = np.asarray(params[key])
            if value.shape != current.shape:
                raise ValueError(
                    f"{key} の形が違います: ファイル {value.shape}, ネットワーク {current.shape} "
                    "（学習時と同じ層の大きさでネットワークを作ってください）"
                )
            self.params[key] = value.astype(current.dtype)
        self._build_layers()
