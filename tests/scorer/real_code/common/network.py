# 受講生のネットワーク: Affine → BatchNorm → ReLU → Affine。
from collections import OrderedDict

from common.layers import Affine, BatchNormalization, Relu


class BatchNormNet:
    def __init__(self, params):
        self.params = params
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(params["W1"], params["b1"])
        self.layers["BatchNorm1"] = BatchNormalization(
            params["gamma1"], params["beta1"], params["running_mean1"], params["running_var1"]
        )
        self.layers["Relu1"] = Relu()
        self.layers["Affine2"] = Affine(params["W2"], params["b2"])

    def predict(self, x):
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers.values():
            x = layer.forward(x)
        return x
