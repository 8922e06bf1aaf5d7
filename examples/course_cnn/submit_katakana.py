"""カタカナ認識の提出ファイル — 受講生が作る大きさの CNN（im2col の畳み込み 3 層と Batch Normalization）の例。

    conv(32, 3×3) → BN → ReLU → pool → conv(32, 3×3) → BN → ReLU → pool
    → conv(64, 3×3) → BN → ReLU → Affine(100) → BN → ReLU → Affine(15)

Example submission of the size trainees build, written the way the course teaches: the trainee's own NumPy
code in common/ (the textbook's im2col and layers, float64), the trained parameters in
katakana_model.pickle (a dict of arrays only), and this file, which the scorer imports as module
``submit_katakana`` with this folder as the working directory, then calls predict(test_data) on chunks of
at most 500 images. Scoring it takes about half a minute of one core and over 1 GB of memory.
"""

import os
import pickle

import numpy as np
from common.bn_conv_net import BatchNormConvNet
from common.functions import softmax

# 相対パスで開く（採点ではこのフォルダが作業フォルダになる）/ relative to this folder
MODEL_FILE = "katakana_model.pickle"

# 学習のときと同じ形でネットワークを作り、保存しておいたパラメータを入れる（import 時に 1 回だけ）。
# Batch Normalization の running_mean / running_var も params に入っている。
with open(MODEL_FILE, "rb") as f:
    params = pickle.load(f)
network = BatchNormConvNet(
    input_dim=(1, 28, 28), conv_channels=(32, 32, 64), pools=(True, True, False), hidden_size=100, output_size=15
)
network.load_params(params)


def preprocess(data):
    """学習時と同じ前処理: 0〜255 の値 → 0〜1 の float32。CNN なので (N, 1, 28, 28) のまま使う。"""
    x = np.asarray(data, dtype=np.float32) / 255.0
    return x.reshape(-1, 1, 28, 28)


def predict(test_data):
    """test_data: (N, 1, 28, 28)、値 0〜255 の画像（train_data.npy と同じ形式）。正解ラベルは渡されない。

    戻り値: (N, 15) の確率（各行が softmax の出力で、合計が 1）。サーバーは各行で最大の位置をクラス番号とし、
    損失（交差エントロピー）も表示する。渡された枚数（採点では 500 枚）をそのまま一度にネットワークに通す。
    Returns softmax probabilities; the whole chunk goes through the network at once, as trainees write it.
    """
    x = preprocess(test_data)
    return softmax(network.predict(x, train_flg=False))


if __name__ == "__main__":
    # 手元での確認用（採点では実行されない）: 学習データで、採点と同じく 500 枚ずつ predict を呼ぶ。
    if os.path.exists("train_data.npy") and os.path.exists("train_label.npy"):
        data = np.load("train_data.npy")
        label = np.load("train_label.npy")
        if label.ndim == 2:  # one-hot → クラス番号
            label = label.argmax(axis=1)
        probs = np.concatenate([predict(data[i : i + 500]) for i in range(0, len(data), 500)])
        pred = probs.argmax(axis=1)
        print(f"学習データでの正解率 / train accuracy: {np.mean(pred == label):.4f} ({len(data)} 枚)")
    else:
        print("train_data.npy / train_label.npy がこのフォルダにないので、確認をスキップしました。")
