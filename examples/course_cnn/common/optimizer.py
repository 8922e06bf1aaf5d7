"""パラメータの更新方法 / optimisers. params の配列をその場で（in place）書き換える。"""

from __future__ import annotations

import math

import numpy as np


class SGD:
    def __init__(self, lr: float = 0.01) -> None:
        self.lr = lr

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for key in grads:
            params[key] -= self.lr * grads[key]


class Adam:
    """Adam (http://arxiv.org/abs/1412.6980v8)。

    勾配のあるパラメータ（grads のキー）だけを更新する: params には Batch Normalization の
    running_mean / running_var も入っているが、それは学習中に各層が自分で更新する値で、勾配はない。
    """

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m: dict[str, np.ndarray] | None = None
        self.v: dict[str, np.ndarray] | None = None

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        if self.m is None or self.v is None:
            self.m = {key: np.zeros_like(params[key]) for key in grads}
            self.v = {key: np.zeros_like(params[key]) for key in grads}
        self.iter += 1
        lr_t = self.lr * math.sqrt(1.0 - self.beta2**self.iter) / (1.0 - self.beta1**self.iter)
        for key in grads:
            g = grads[key].astype(params[key].dtype, copy=False)
            self.m[key] += (1 - self.beta1) * (g - self.m[key])
            self.v[key] += (1 - self.beta2) * (g**2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)
