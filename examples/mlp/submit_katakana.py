"""カタカナ認識の提出ファイル — 全結合ネットワーク（784 → 100 → 100 → 15）の例。

Example submission built the way the course teaches: the trainee's own NumPy code in common/, the trained
parameters in katakana_model.pickle (a dict of arrays only), and this file, which the scorer imports as
module ``submit_katakana`` with this folder as the working directory, then calls predict(test_data) on
chunks of at most 500 images.
"""

import os
import pickle

import numpy as np
from common.multi_layer_net import MultiLayerNet

# 相対パスで開く（採点ではこのフォルダが作業フォルダになる）/ relative to this folder
MODEL_FILE = "katakana_model.pickle"

# 学習のときと同じ大きさでネットワークを作り、保存しておいたパラメータを入れる。
# モデルの読み込みは import 時に 1 回だけ（predict の中に書くと 500 枚ごとに読み直すことになる）。
with open(MODEL_FILE, "rb") as f:
    params = pickle.load(f)
network = MultiLayerNet(input_size=784, hidden_size_list=[100, 100], output_size=15)
network.load_params(params)


def preprocess(data):
    """学習時と同じ前処理: 0〜255 の値（train_data.npy と同じ float）→ 0〜1 の float32、(N, 1, 28, 28) → (N, 784)。"""
    x = np.asarray(data, dtype=np.float32) / 255.0
    return x.reshape(x.shape[0], -1)


def predict(test_data):
    """test_data: (N, 1, 28, 28)、値 0〜255 の画像（train_data.npy と同じ形式）。正解ラベルは渡されない。

    戻り値: N 個のクラス番号（0 = ア … 14 = ソ）。
    """
    x = preprocess(test_data)
    scores = network.predict(x)  # (N, 15)
    return np.argmax(scores, axis=1)


if __name__ == "__main__":
    # 手元での確認用（採点では実行されない）: 学習データで、採点と同じく 500 枚ずつ predict を呼ぶ。
    if os.path.exists("train_data.npy") and os.path.exists("train_label.npy"):
        data = np.load("train_data.npy")
        label = np.load("train_label.npy")
        if label.ndim == 2:  # one-hot → クラス番号
            label = label.argmax(axis=1)
        pred = np.concatenate([np.asarray(predict(data[i : i + 500])) for i in range(0, len(data), 500)])
        print(f"学習データでの正解率 / train accuracy: {np.mean(pred == label):.4f} ({len(data)} 枚)")
    else:
        print("train_data.npy / train_label.npy がこのフォルダにないので、確認をスキップしました。")
