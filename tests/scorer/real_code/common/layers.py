# 講座で書いたレイヤー（受講生のコードを模したもの）。
# Trainee-style layers, written the way the course teaches them (NumPy only, forward for inference).
import numpy as np


class Affine:
    def __init__(self, W, b):
        self.W = W
        self.b = b

    def forward(self, x):
        return np.dot(x, self.W) + self.b


class Relu:
    def forward(self, x):
        return np.maximum(0, x)


class BatchNormalization:
    def __init__(self, gamma, beta, running_mean, running_var):
        self.gamma = gamma
        self.beta = beta
        self.running_mean = running_mean
        self.running_var = running_var

    def forward(self, x, train_flg=False):
        xn = (x - self.running_mean) / np.sqrt(self.running_var + 10e-7)
        return self.gamma * xn + self.beta
