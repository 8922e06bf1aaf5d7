"""im2col / col2im: 畳み込みとプーリングを行列の積 1 回にするための並べ替え（教科書どおりの書き方）。

im2col は (N, C, FH, FW, out_h, out_w) の配列に窓をコピーし、transpose + reshape でもう一度コピーする。
500 枚を一度に渡すと、この 2 つの配列が同時にメモリに載る（1 層で数百 MB）。採点する側から見ると、
受講生のネットワークの時間とメモリの大半はここで使われる。
The textbook's im2col: every window copied into a 6-D array, then copied again by transpose + reshape.
"""

from __future__ import annotations

import numpy as np


def conv_output_size(input_size: int, filter_size: int, stride: int = 1, pad: int = 0) -> int:
    return (input_size + 2 * pad - filter_size) // stride + 1


def im2col(input_data: np.ndarray, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """(N, C, H, W) の画像を (N * out_h * out_w, C * filter_h * filter_w) の 2 次元配列にする。

    配列の型は入力と同じ（教科書の np.zeros は float64 固定だが、float32 で学習するときに倍の
    メモリと時間を使わないよう、入力の型に合わせた）。
    """
    N, C, H, W = input_data.shape
    out_h = conv_output_size(H, filter_h, stride, pad)
    out_w = conv_output_size(W, filter_w, stride, pad)

    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w), dtype=input_data.dtype)

    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]

    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


def col2im(
    col: np.ndarray,
    input_shape: tuple[int, ...],
    filter_h: int,
    filter_w: int,
    stride: int = 1,
    pad: int = 0,
) -> np.ndarray:
    """im2col の逆。重なった位置の値は足し合わせる（それが勾配の正しい集め方だから）。"""
    N, C, H, W = input_shape
    out_h = conv_output_size(H, filter_h, stride, pad)
    out_w = conv_output_size(W, filter_w, stride, pad)
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)

    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1), dtype=col.dtype)
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x, :, :]

    return img[:, :, pad : H + pad, pad : W + pad]
