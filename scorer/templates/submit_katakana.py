r"""カタカナ 15 文字認識 — 提出用テンプレート（submit_katakana.py）
Submission template for the handwritten katakana assignment.

このファイルを、学習済みモデル（例: katakana_model.pickle）と自作コード（例: common/ フォルダ、util.py）と
いっしょに 1 つのフォルダに入れ、そのフォルダを zip にして提出してください。
Put this file, your trained model and your own code in one folder and upload that folder as a zip.

■ 採点のしかた / How the server scores it
  1. zip を展開し、このファイルのあるフォルダを作業フォルダにして、このファイルをモジュール
     submit_katakana として 1 回だけ import します（python submit_katakana.py として実行はしません）。
     そのため、いちばん下の if __name__ == "__main__": の中は採点では実行されません。
     (The file is imported once as a module, so the __main__ block below never runs on the server.)
  2. そのあと predict(test_data) を、テスト画像 500 枚ずつに分けて何回も呼びます（最後は端数のことも
     あります）。モデルの読み込みは predict の外に書き、import のときに 1 回だけ行ってください。
     (predict is called many times, on chunks of at most 500 images: load the model once, outside it.)

■ predict が受け取るもの / What predict receives
  test_data: NumPy 配列。形 (N, 1, 28, 28)、値 0〜255 の float（配布した train_data.npy と同じ形式: 白い紙に黒い文字）。
  学習のときに /255 などの前処理をしたなら、predict の中でも同じ前処理をしてください。
  正解ラベルは渡されません。正解率と損失はサーバーが計算します。
  (Images only, N ≤ 500, same format as train_data.npy: floats 0-255, dark strokes on white. Apply
   inside predict the same preprocessing as in training, e.g. / 255. No labels: the server scores.)

■ predict が返すもの / What predict must return
  N 個のクラス番号（0 = ア, 1 = イ, 2 = ウ, 3 = エ, 4 = オ, 5 = カ, 6 = キ, 7 = ク, 8 = ケ, 9 = コ,
  10 = サ, 11 = シ, 12 = ス, 13 = セ, 14 = ソ）。NumPy 配列でもリストでもかまいません。
  または形 (N, 15) のスコアの配列でもかまいません（各行の最大の位置をクラス番号とみなします。
  各行が softmax 後の確率なら、損失（交差エントロピー）も表示されます）。
  (N class ids 0–14, or an (N, 15) score array; rows that are probabilities also get a loss.)

■ ファイルの置き方・開き方 / Files and paths
  - ファイルは相対パスで開いてください: open("katakana_model.pickle", "rb")。
    C:\Users\... や /content/drive/... のような絶対パスは採点環境にはありません。
  - 採点環境はネットワークにつながっていません。書き込めるのは自分のフォルダと /tmp だけ、
    メモリは約 4 GiB、制限時間は 10 分です。
  - zip に submit_katakana.py と submit_katakana.ipynb の両方があるときは、.py の方が採点されます。
  - train_data.npy などの学習データは zip に入れる必要はありません（採点には使われません）。

■ 旧テンプレート（func_predict）からの変更点 / Moving from the old func_predict
  変えるのは次の 3 か所だけです（makedataset() / main() / util.loaddata() も不要になりました）:
    1. def func_predict(test_data, test_label):  →  def predict(test_data):
    2. test_label を使って loss や accuracy を計算している行  →  削除
    3. return loss, accuracy  →  return y_pred   （N 個のクラス番号、または (N, 15) のスコア）
  前処理（/ 255 など）は、旧 makedataset() に書いていたものを predict の中（下の preprocess）に移します。
"""

import os
import pickle

import numpy as np

# =====================================================================================================
# 1. 学習済みモデルを読み込む（import のときに 1 回だけ実行される）/ load the model once, at import
# =====================================================================================================
MODEL_FILE = "katakana_model.pickle"  # 相対パス（このファイルと同じフォルダ）/ relative path

if not os.path.exists(MODEL_FILE):
    raise FileNotFoundError(
        f"{MODEL_FILE} が見つかりません（作業フォルダ: {os.getcwd()}）。"
        "学習済みモデルをこのファイルと同じフォルダに置き、いっしょに zip に入れてください。"
    )

with open(MODEL_FILE, "rb") as f:
    # このテンプレートは network.params（{"W1": 配列, "b1": 配列, "W2": ...}）を pickle で保存したものを読む。
    # ネットワークのオブジェクトごと pickle した場合、そのクラスを定義したファイル（common/ など）も zip に
    # 入れる必要があります。ノートブックの中で定義したクラスは、採点環境では読み込めません。
    params = pickle.load(f)  # noqa: S301

# ▼ 自作のネットワーククラスを使う場合は、下の forward を次のように書き換えます（common/ も zip に入れる）:
#
#   from common.multi_layer_net import MultiLayerNet
#   network = MultiLayerNet(input_size=784, hidden_size_list=[100, 100], output_size=15)
#   for i in range(1, 4):  # 各レイヤーが持っている W, b も入れ直す
#       network.layers["Affine" + str(i)].W = params["W" + str(i)]
#       network.layers["Affine" + str(i)].b = params["b" + str(i)]
#
#   def forward(x: np.ndarray) -> np.ndarray:
#       return network.predict(x)


def forward(x: np.ndarray) -> np.ndarray:
    """全結合ネットワーク（Affine → ReLU → … → Affine）の順伝播。(N, 784) → (N, 15) のスコア。

    params のキー W1, b1, W2, b2, … の数から層の数を決めるので、隠れ層の数や大きさは学習時のままでよい。
    """
    n_layers = len([key for key in params if key.startswith("W")])
    for i in range(1, n_layers + 1):
        x = x @ params["W" + str(i)] + params["b" + str(i)]
        if i < n_layers:
            x = np.maximum(x, 0)  # ReLU（最後の層の後には付けない）
    return x


# =====================================================================================================
# 2. 前処理 / preprocessing — 学習のときと同じ処理にすること（same as in training）
# =====================================================================================================
def preprocess(test_data: np.ndarray) -> np.ndarray:
    x = np.asarray(test_data, dtype=np.float32) / 255.0  # 0〜255 → 0〜1
    x = x.reshape(x.shape[0], -1)  # 全結合なら (N, 784)。CNN なら (N, 1, 28, 28) のまま使う
    return x


# =====================================================================================================
# 3. predict — サーバーが呼ぶ関数。名前と引数を変えないこと / the function the server calls
# =====================================================================================================
def predict(test_data: np.ndarray) -> np.ndarray:
    """test_data: (N, 1, 28, 28)、値 0〜255 の画像（N ≤ 500）。正解ラベルは渡されない。

    戻り値 y_pred: N 個のクラス番号（0〜14）。
    """
    x = preprocess(test_data)
    scores = forward(x)  # (N, 15)
    y_pred: np.ndarray = np.argmax(scores, axis=1)  # (N,) クラス番号
    return y_pred


# =====================================================================================================
# 4. 手元での確認 / local self-check — 採点では実行されない（never runs on the server）
#    python submit_katakana.py で実行すると、train_data.npy があれば、採点と同じく 500 枚ずつ predict を
#    呼んで、返り値の形と学習データでの正解率を確かめます。
# =====================================================================================================
def self_check() -> None:
    if not (os.path.exists("train_data.npy") and os.path.exists("train_label.npy")):
        print("train_data.npy / train_label.npy がこのフォルダにないので、確認をスキップしました。")
        return
    data = np.load("train_data.npy")
    label = np.load("train_label.npy")
    if label.ndim == 2:  # one-hot → クラス番号
        label = label.argmax(axis=1)

    preds = []
    for start in range(0, len(data), 500):
        chunk = data[start : start + 500]
        y = np.asarray(predict(chunk))
        if y.ndim == 2:  # (N, 15) のスコアを返した場合
            y = y.argmax(axis=1)
        assert y.shape == (len(chunk),), f"予測の数が違います（画像 {len(chunk)} 枚、返り値の形 {y.shape}）"
        assert y.min() >= 0 and y.max() <= 14, "クラス番号は 0〜14 の範囲で返すこと"
        preds.append(y)
    accuracy = np.mean(np.concatenate(preds) == label)
    print(f"OK: 学習データ {len(data)} 枚での正解率 / train accuracy = {accuracy:.4f}")


if __name__ == "__main__":
    self_check()
