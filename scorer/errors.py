"""Stable error codes for every way a submission can fail, with one message table per language.

A code is part of the public contract: the site, the emails, the JSON output of the command line and
the database all store the code, never the text, so messages can be reworded without breaking anything.
Every message says what happened and what to do about it. ``Blame.SERVER`` codes are never the
trainee's fault: the service gives the daily upload slot back for them.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Lang = Literal["ja", "en"]
LANGS: tuple[Lang, ...] = ("ja", "en")


class Blame(StrEnum):
    SUBMISSION = "submission"
    SERVER = "server"


class ErrorCode(StrEnum):
    # Zip intake
    NOT_A_ZIP = "not_a_zip"
    ZIP_TOO_LARGE = "zip_too_large"
    ZIP_TOO_MANY_FILES = "zip_too_many_files"
    ZIP_EXPANDS_TOO_FAR = "zip_expands_too_far"
    ZIP_UNSAFE_ENTRY = "zip_unsafe_entry"
    ZIP_ENCRYPTED = "zip_encrypted"
    ENTRY_NOT_FOUND = "entry_not_found"
    ENTRY_AMBIGUOUS = "entry_ambiguous"
    # Static checks of the entry
    NOTEBOOK_UNREADABLE = "notebook_unreadable"
    SYNTAX_ERROR = "syntax_error"
    PREDICT_MISSING = "predict_missing"
    LEGACY_FUNC_PREDICT = "legacy_func_predict"
    ENTRY_TOO_LARGE = "entry_too_large"
    CHECK_LIMIT = "check_limit"
    RUNTIME_NOT_OFFERED = "runtime_not_offered"
    # Running the entry
    MODULE_NOT_FOUND = "module_not_found"
    OWN_MODULE_MISSING = "own_module_missing"
    FILE_OUTSIDE_ZIP = "file_outside_zip"
    IMPORT_FAILED = "import_failed"
    PREDICT_EXCEPTION = "predict_exception"
    SUBMISSION_EXITED = "submission_exited"
    HARNESS_DISRUPTED = "harness_disrupted"
    # What Keras and TensorFlow trainees get wrong (the TensorFlow runtime)
    TENSORFLOW_1_CODE = "tensorflow_1_code"
    KERAS_REMOVED_API = "keras_removed_api"
    KERAS_SAVEDMODEL = "keras_savedmodel"
    KERAS_CUSTOM_OBJECT = "keras_custom_object"
    CHANNELS_FIRST_INPUT = "channels_first_input"
    TRAINING_TIME_LIMIT = "training_time_limit"
    # The run's process stopped around it, or its result could not be recorded: still the submission's
    WORKER_PROCESS_LOST = "worker_process_lost"
    RESULT_NOT_STORED = "result_not_stored"
    # Checking what predict returned
    PREDICTION_COUNT = "prediction_count"
    PREDICTION_SHAPE = "prediction_shape"
    CLASS_OUT_OF_RANGE = "class_out_of_range"
    NON_FINITE = "non_finite"
    # Limits
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"
    DISK_LIMIT = "disk_limit"
    OUTPUT_TOO_LARGE = "output_too_large"
    # The service's own faults
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"
    INTERNAL_ERROR = "internal_error"

    @property
    def blame(self) -> Blame:
        return Blame.SERVER if self in _SERVER_CODES else Blame.SUBMISSION


_SERVER_CODES = frozenset({ErrorCode.SANDBOX_UNAVAILABLE, ErrorCode.INTERNAL_ERROR})

# The whole migration, preprocessing included: every legacy notebook normalised inside makedataset(),
# which the new contract never calls, so a literal signature change silently feeds raw 0-255 pixels.
_LEGACY_FIX_JA = (
    "1. def func_predict(test_data, test_label): を def predict(test_data): に変える\n"
    "2. test_label を使う行と、loss や accuracy を計算する行を消し、予測したクラス番号（0〜14）"
    "か (N, 15) のスコアを返す\n"
    "3. makedataset() や学習のときにしていた前処理（例: test_data / 255）を、predict の中でも同じように行う"
    "（新しい形式では makedataset() は呼ばれません）\n"
    "4. モデルの読み込みは predict の外で 1 回だけ行う\n"
    "例:\n"
    "def predict(test_data):\n"
    "    x = test_data / 255          # 学習のときと同じ前処理\n"
    "    y = network.predict(x)\n"
    "    return y.argmax(axis=1)"
)
_LEGACY_FIX_EN = (
    "1. def func_predict(test_data, test_label):  →  def predict(test_data):\n"
    "2. delete the lines that use test_label or compute loss/accuracy; return the predicted class ids "
    "(0–14) or an (N, 15) score array\n"
    "3. apply inside predict the same preprocessing your makedataset()/training did (e.g. test_data / 255): "
    "the new contract never calls makedataset()\n"
    "4. load the model once, outside predict\n"
    "Example:\n"
    "def predict(test_data):\n"
    "    x = test_data / 255          # the same preprocessing as in training\n"
    "    y = network.predict(x)\n"
    "    return y.argmax(axis=1)"
)

MESSAGES: dict[Lang, dict[ErrorCode, str]] = {
    "ja": {
        ErrorCode.NOT_A_ZIP: "アップロードされたファイルは zip ファイルとして読めません。"
        "提出物のフォルダを zip に圧縮して（Windows: 右クリック →「送る」→「圧縮 (zip 形式) フォルダー」、"
        "macOS: 右クリック →「圧縮」）、その .zip をアップロードしてください。",
        ErrorCode.ZIP_TOO_LARGE: "zip ファイルが大きすぎます（{size}、上限 {limit}）。"
        "学習データ（train_data.npy など）や不要なファイルを除いて、モデルとコードだけを zip にしてください。",
        ErrorCode.ZIP_TOO_MANY_FILES: "zip 内のファイルが多すぎます（{count} 個、上限 {limit} 個）。"
        "提出に必要なファイル（submit_katakana、モデル、自作コード）だけを zip にしてください。",
        ErrorCode.ZIP_EXPANDS_TOO_FAR: "zip を展開すると大きすぎます（{limit} を超えました）。"
        "学習データや不要な大きいファイルを除いてから zip にしてください。",
        ErrorCode.ZIP_UNSAFE_ENTRY: "zip に安全でない項目があります: {name}（{reason}）。"
        "シンボリックリンクや「..」・絶対パスを含む名前は使えません。普通のフォルダを zip にし直してください。",
        ErrorCode.ZIP_ENCRYPTED: "zip にパスワードがかかっています（{name}）。パスワードなしで zip にし直してください。",
        ErrorCode.ENTRY_NOT_FOUND: "zip の中に submit_katakana.py も submit_katakana.ipynb も見つかりません。"
        "このファイルを zip の一番上か、一番上のフォルダの中に置いてください。見つかったファイル: {found}",
        ErrorCode.ENTRY_AMBIGUOUS: "submit_katakana が複数の場所にあります（{paths}）。提出するものを 1 つだけ残してください。",
        ErrorCode.NOTEBOOK_UNREADABLE: "ノートブック {name} を読めません（{reason}）。"
        "Jupyter で開いて保存し直すか、コードを submit_katakana.py に書き出して提出してください。",
        ErrorCode.SYNTAX_ERROR: "{file}（{line}）に文法エラーがあります: {reason}。"
        "手元で実行してエラーが出ないことを確かめてから提出してください。",
        ErrorCode.ENTRY_TOO_LARGE: "{file} のコードは {size} あり、上限（{limit}）を超えています。"
        "学習済みの重みをコードに書き込まず、ファイル（np.save や pickle）にして zip に入れ、"
        "predict の外で 1 回だけ読み込んでください。",
        ErrorCode.CHECK_LIMIT: "実行前の確認が上限（{limit}）を超えたため、提出を確認できませんでした。"
        "zip かコードが、提出に必要な大きさや複雑さを大きく超えています。"
        "重みはコードではなくファイルに入れ、使わない大きなファイルは zip から除いてください。",
        ErrorCode.PREDICT_MISSING: "{file} に関数 predict(test_data) が定義されていません。"
        "テンプレートのとおり、画像の配列を受け取って予測したクラス番号を返す predict を定義してください。",
        ErrorCode.LEGACY_FUNC_PREDICT: "{file} には旧形式の func_predict(test_data, test_label) しかありません。"
        "新しい形式では正解ラベルは渡されず、採点はサーバーが行います。次のように直してください:\n" + _LEGACY_FIX_JA,
        ErrorCode.RUNTIME_NOT_OFFERED: "{file}（{where}）で {module} を import しています。TensorFlow / Keras を使う提出は "
        "TensorFlow の採点環境で動かしますが、{reason}。この提出は今日の提出回数に数えていません。"
        "predict を NumPy だけで書き直すか、講師に相談してください。",
        ErrorCode.TENSORFLOW_1_CODE: "TensorFlow 1.x の書き方（{name}）が使われています。採点環境の TensorFlow 2 には"
        "ありません。{name} を使わない TensorFlow 2 / Keras の書き方（モデルは keras.models.load_model で読み込み、"
        "model.predict で予測）に直してください。どうしても 1.x のコードを使うなら tf.compat.v1.{short} と書けます。",
        ErrorCode.KERAS_REMOVED_API: "{name} は今の Keras にはありません（{since}）。{fix}",
        ErrorCode.KERAS_SAVEDMODEL: "keras.models.load_model では SavedModel のフォルダ（{path}）を読み込めません"
        '（Keras 3 からの変更です）。model = keras.layers.TFSMLayer("{path}", call_endpoint="serving_default") '
        'で読み込むか、学習したノートブックで model.save("katakana_model.keras") として保存し直し、'
        "その .keras ファイルを zip に入れてください。",
        ErrorCode.KERAS_CUSTOM_OBJECT: "保存したモデルに自作の層・損失関数など（{name}）が含まれていますが、"
        "読み込むときにその定義が見つかりません。{name} を定義したコードを submit_katakana か zip 内の自作モジュールに入れ、"
        'keras.models.load_model(パス, custom_objects={{"{name}": {name}}}) のように渡してください。'
        "損失関数や評価関数だけなら load_model(パス, compile=False) でも読み込めます（予測には不要です）。",
        ErrorCode.CHANNELS_FIRST_INPUT: "モデルは (N, 28, 28, 1) の画像（チャンネルが最後）を受け取りますが、"
        "採点で渡す test_data は (N, 1, 28, 28) です（{got}）。predict の中で "
        "x = test_data.transpose(0, 2, 3, 1) / 255 のように並べ替えてから（学習のときと同じ前処理も行って）"
        "model.predict(x) を呼んでください。",
        ErrorCode.TRAINING_TIME_LIMIT: "制限時間（{limit}）を超えたため停止しました。読み込みのときにモデルを学習しています"
        "（{where} の {call}）。採点ではすべてのセルが実行されるため、学習のセルも毎回実行されます。"
        '学習のセルを削除するか if __name__ == "__main__": の中に入れ、保存したモデルを読み込むだけにしてください。',
        ErrorCode.MODULE_NOT_FOUND: "モジュール「{module}」を import できません。"
        "自作のモジュールなら、そのファイルも zip に入れてください。採点環境で使えるライブラリ: {offered}",
        ErrorCode.OWN_MODULE_MISSING: "自作のパッケージ {package} は zip に入っていますが、{missing} がありません"
        "（import {module} に必要です）。{missing} も zip に入れてから提出してください。",
        ErrorCode.FILE_OUTSIDE_ZIP: "{file} の読み込み中（{where}）に、zip の外にあるファイル {path} を開こうとしました。"
        "採点では predict より後ろのセルやコードも含めてすべて実行されるため、手元で試すためのコード"
        '（../1_data の読み込みなど）も実行されます。そのようなコードは if __name__ == "__main__": の中に入れるか、'
        "そのセルを削除してから提出してください。",
        ErrorCode.IMPORT_FAILED: "{file} を読み込む途中でエラーが起きました（{reason}）。"
        'ファイルを開くときは zip 内の相対パス（例: open("katakana_model.pickle", "rb")）を使い、'
        "必要なファイルをすべて zip に入れてください。下のログに詳細があります。",
        ErrorCode.PREDICT_EXCEPTION: "predict の実行中にエラーが起きました（{reason}）。"
        "下のログにあなたのコードのトレースバックがあります。学習データで predict を試してから提出してください。",
        ErrorCode.SUBMISSION_EXITED: "予測を返す前にプログラムが終了しました（{reason}）。"
        "sys.exit()・exit()・os._exit() を呼ばないでください。",
        ErrorCode.HARNESS_DISRUPTED: "提出されたコードが採点用のプログラムの動作を妨げたため、結果を受け取れませんでした（{reason}）。"
        "ファイル記述子 3 に書き込んだり、NumPy などのライブラリの関数を置き換えたりしないでください。"
        "アップロード時の無料の事前チェックや、手元の python -m scorer run で全文のログを確認できます。",
        ErrorCode.WORKER_PROCESS_LOST: "あなたのコードを実行している間に、採点を担当するプロセスそのものが止まりました（試したすべての回で）。"
        "そのため結果はありません。サーバー側のプロセスのメモリや時間を使い切らせる提出で起こります"
        "（たとえば、重みをコードに直接書き込んだ巨大なソースやノートブック、大量の出力）。"
        "重みはファイルから読み込むようにして zip を小さくし、手元の python -m scorer check で確かめてください。",
        ErrorCode.RESULT_NOT_STORED: "実行は終わりましたが、その結果（出力や、あなたのコードが出したエラーの内容）を保存できませんでした。"
        "出力やエラーのメッセージに特殊な文字（NUL など）を含めないでください。"
        "アップロード時の無料の事前チェックや、手元の python -m scorer run で全文のログを確認できます。",
        ErrorCode.PREDICTION_COUNT: "predict が返した予測の数が違います（画像 {expected} 枚に対して {got} 個）。"
        "渡された画像 1 枚につき 1 つの予測を返してください。",
        ErrorCode.PREDICTION_SHAPE: "predict の戻り値の形が使えません（{got}）。"
        "クラス番号の配列 (N,) か、スコアの配列 (N, 15) を返してください。",
        ErrorCode.CLASS_OUT_OF_RANGE: "predict が 0〜14 以外のクラス番号を返しました（例: {example}）。"
        "クラス番号は 0（ア）〜 14（ソ）の整数で返してください。",
        ErrorCode.NON_FINITE: "predict が NaN または無限大を返しました（{count} 個）。"
        "学習が発散していないか、log や割り算に 0 が入っていないか確かめてください。",
        ErrorCode.TIME_LIMIT: "制限時間（{limit}）を超えたため停止しました。"
        "無限ループや、予測のときに学習していないかを確かめてください。",
        ErrorCode.MEMORY_LIMIT: "メモリの上限（{limit}）を超えたため停止しました。"
        "大きな配列を作りすぎていないか確かめてください（predict は 500 枚ずつ呼ばれます）。",
        ErrorCode.DISK_LIMIT: "書き込みの上限（{limit}）を超えました。予測のために大きなファイルを書かないでください。",
        ErrorCode.OUTPUT_TOO_LARGE: "画面への出力が多すぎるため停止しました（{limit} を超えました）。"
        "ループの中の print を減らしてください。",
        ErrorCode.SANDBOX_UNAVAILABLE: "採点環境を準備できませんでした。あなたの提出の問題ではありません。"
        "この提出は今日の提出回数に数えません。少し待ってからもう一度提出してください。",
        ErrorCode.INTERNAL_ERROR: "サーバー側のエラーで採点できませんでした。あなたの提出の問題ではありません。"
        "この提出は今日の提出回数に数えません。講師に連絡するか、少し待ってから再提出してください。",
    },
    "en": {
        ErrorCode.NOT_A_ZIP: "The uploaded file cannot be read as a zip. Compress your submission folder "
        "(Windows: right-click → Send to → Compressed (zipped) folder; macOS: right-click → Compress) "
        "and upload the .zip.",
        ErrorCode.ZIP_TOO_LARGE: "The zip is too large ({size}; the limit is {limit}). Leave out the training "
        "data (train_data.npy etc.) and anything else not needed: zip only your model and code.",
        ErrorCode.ZIP_TOO_MANY_FILES: "The zip holds too many files ({count}; the limit is {limit}). "
        "Zip only what the submission needs: submit_katakana, your model and your own code.",
        ErrorCode.ZIP_EXPANDS_TOO_FAR: "The zip expands to more than {limit}. Leave out the training data and "
        "other large files, then zip it again.",
        ErrorCode.ZIP_UNSAFE_ENTRY: "The zip holds an unsafe entry: {name} ({reason}). Symbolic links and names "
        "with '..' or absolute paths are not allowed. Zip an ordinary folder again.",
        ErrorCode.ZIP_ENCRYPTED: "The zip is password-protected ({name}). Zip it again without a password.",
        ErrorCode.ENTRY_NOT_FOUND: "Neither submit_katakana.py nor submit_katakana.ipynb is in the zip. Put it "
        "at the top of the zip or inside its one top-level folder. Files found: {found}",
        ErrorCode.ENTRY_AMBIGUOUS: "submit_katakana appears in several places ({paths}). Keep only the one "
        "you want scored.",
        ErrorCode.NOTEBOOK_UNREADABLE: "The notebook {name} cannot be read ({reason}). Open and save it again "
        "in Jupyter, or export the code to submit_katakana.py and submit that.",
        ErrorCode.SYNTAX_ERROR: "Syntax error in {file} ({line}): {reason}. Run it locally without "
        "errors before submitting.",
        ErrorCode.ENTRY_TOO_LARGE: "{file} is {size} of code, over the limit of {limit}. Do not write trained "
        "weights into the code: save them to a file in the zip (np.save, pickle) and load it once, outside "
        "predict.",
        ErrorCode.CHECK_LIMIT: "Checking the submission before running it went over its limit ({limit}): the zip "
        "or the code is far larger or more complex than a submission needs. Keep weights in files rather than "
        "in code, and leave out large files the submission does not use.",
        ErrorCode.PREDICT_MISSING: "{file} does not define a function predict(test_data). As in the template, "
        "define predict so that it takes the image array and returns the predicted class ids.",
        ErrorCode.LEGACY_FUNC_PREDICT: "{file} only has the old func_predict(test_data, test_label). The new "
        "contract passes no labels: the server computes the score. Change it like this:\n" + _LEGACY_FIX_EN,
        ErrorCode.RUNTIME_NOT_OFFERED: "{file} imports {module} ({where}). Submissions that use TensorFlow or Keras "
        "run in the TensorFlow runtime, but {reason}. This upload does not count against today's uploads. Write "
        "predict with NumPy only, or ask your instructor.",
        ErrorCode.TENSORFLOW_1_CODE: "Your code uses TensorFlow 1.x ({name}), which the scoring runtime's "
        "TensorFlow 2 does not have. Rewrite it the TensorFlow 2 / Keras way (load the model with "
        "keras.models.load_model, predict with model.predict); if you must keep 1.x code, it is "
        "tf.compat.v1.{short}.",
        ErrorCode.KERAS_REMOVED_API: "{name} no longer exists in Keras ({since}). {fix}",
        ErrorCode.KERAS_SAVEDMODEL: "keras.models.load_model cannot read a SavedModel folder ({path}) since Keras 3. "
        'Load it with model = keras.layers.TFSMLayer("{path}", call_endpoint="serving_default"), or save the '
        'model again in your training notebook with model.save("katakana_model.keras") and put that .keras file '
        "in the zip.",
        ErrorCode.KERAS_CUSTOM_OBJECT: "Your saved model uses a custom layer, loss or other object ({name}) whose "
        "definition is not found when it is loaded. Put the code that defines {name} in submit_katakana or one "
        'of your modules in the zip and pass it: keras.models.load_model(path, custom_objects={{"{name}": '
        "{name}}}). If it is only a loss or metric, load_model(path, compile=False) also works (predict does "
        "not need them).",
        ErrorCode.CHANNELS_FIRST_INPUT: "Your model takes images shaped (N, 28, 28, 1) (channels last), but the "
        "test_data it is given is (N, 1, 28, 28) ({got}). In predict, reorder it first, with the same "
        "preprocessing as in training: x = test_data.transpose(0, 2, 3, 1) / 255, then model.predict(x).",
        ErrorCode.TRAINING_TIME_LIMIT: "Stopped: the time limit ({limit}) was exceeded while your code trains a "
        "model as it is loaded ({call}, {where}). Scoring runs every cell, so training cells run every time. "
        'Delete the training cells or put them under if __name__ == "__main__":, and only load the saved model.',
        ErrorCode.MODULE_NOT_FOUND: "The module '{module}' cannot be imported. If it is your own module, put "
        "its file in the zip too. Libraries the scoring runtime offers: {offered}",
        ErrorCode.OWN_MODULE_MISSING: "Your own package {package} is in the zip, but {missing} is not (import "
        "{module} needs it). Add {missing} to the zip and submit again.",
        ErrorCode.FILE_OUTSIDE_ZIP: "While loading {file} ({where}), your code opened {path}, which is outside "
        "the zip. Everything runs when scored, including the cells and code after predict, so local test code "
        '(such as reading ../1_data) runs too. Put such code inside if __name__ == "__main__": or delete that '
        "cell, then submit again.",
        ErrorCode.IMPORT_FAILED: "An error occurred while loading {file} ({reason}). Open files by paths "
        'relative to your zip (e.g. open("katakana_model.pickle", "rb")) and include every file you '
        "need. The log below has the details.",
        ErrorCode.PREDICT_EXCEPTION: "An error occurred inside predict ({reason}). The log below shows your "
        "code's traceback. Try predict on the training data before submitting.",
        ErrorCode.SUBMISSION_EXITED: "The program ended before returning predictions ({reason}). Do not call "
        "sys.exit(), exit() or os._exit().",
        ErrorCode.HARNESS_DISRUPTED: "Your code interfered with the scoring harness, so no valid result came "
        "back ({reason}). Do not write to file descriptor 3 or replace functions of NumPy or other libraries. "
        "The free pre-flight at upload and python -m scorer run on your own data show the full log.",
        ErrorCode.WORKER_PROCESS_LOST: "The process running your code stopped before the run could end (on "
        "every attempt), so there is no result. This happens when a submission makes the server's own process "
        "run out of memory or time, for example an enormous source file or notebook with weights pasted into "
        "the code, or a flood of output. Load weights from a file to keep the zip small, and try it with "
        "python -m scorer check on your own computer.",
        ErrorCode.RESULT_NOT_STORED: "The run ended, but its result (the output, or the error your code raised) "
        "could not be stored. Keep unusual characters (such as NUL) out of what your code prints or raises. "
        "The free pre-flight at upload and python -m scorer run on your own data show the full log.",
        ErrorCode.PREDICTION_COUNT: "predict returned the wrong number of predictions ({got} for {expected} "
        "images). Return one prediction per image it is given.",
        ErrorCode.PREDICTION_SHAPE: "predict returned something of an unusable shape ({got}). Return an array "
        "of class ids shaped (N,) or of scores shaped (N, 15).",
        ErrorCode.CLASS_OUT_OF_RANGE: "predict returned class ids outside 0–14 (e.g. {example}). Return whole "
        "numbers from 0 (ア) to 14 (ソ).",
        ErrorCode.NON_FINITE: "predict returned NaN or infinite values ({count} of them). Check whether "
        "training diverged, or a log or division received 0.",
        ErrorCode.TIME_LIMIT: "Stopped: the time limit ({limit}) was exceeded. Look for an endless loop, or "
        "training done at prediction time.",
        ErrorCode.MEMORY_LIMIT: "Stopped: the memory limit ({limit}) was exceeded. Avoid building huge "
        "arrays (predict is called on 500 images at a time).",
        ErrorCode.DISK_LIMIT: "The write limit ({limit}) was exceeded. Do not write large files to predict.",
        ErrorCode.OUTPUT_TOO_LARGE: "Stopped: the program printed too much (over {limit}). Remove the print "
        "calls inside loops.",
        ErrorCode.SANDBOX_UNAVAILABLE: "The scoring environment could not be prepared. This is not a problem "
        "with your submission, and it does not count against today's uploads. Please submit again later.",
        ErrorCode.INTERNAL_ERROR: "A server error prevented scoring. This is not a problem with your "
        "submission, and it does not count against today's uploads. Tell your instructor or submit again "
        "later.",
    },
}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(code: ErrorCode, lang: Lang, params: dict[str, Any]) -> str:
    """The message for ``code`` in ``lang``; a missing parameter shows as ``?`` rather than failing.

    A parameter ``name_ja`` / ``name_en``, when given, is used instead of ``name`` in that language
    (a position "cell 3, line 2" reads "セル 3 の 2 行目" in the Japanese message).
    """
    template = MESSAGES[lang][code]
    values = {name: params.get(f"{name}_{lang}", params.get(name, "?")) for name in _fields(template)}
    return template.format(**values)


@dataclass
class ScoringError(Exception):
    """A failure with a stable code; ``detail`` is extra text for the log (a traceback, a file list)."""

    code: ErrorCode
    params: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.code.value)

    def __reduce__(self) -> tuple[type[ScoringError], tuple[ErrorCode, dict[str, Any], str]]:
        # Pickled whole: a check run in a bounded child (scorer.bounded) raises it in the parent.
        return (ScoringError, (self.code, self.params, self.detail))

    def message(self, lang: Lang) -> str:
        return render(self.code, lang, self.params)

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message('en')}"

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "blame": self.code.blame.value,
            "message": self.message("en"),
            "message_ja": self.message("ja"),
            "params": {k: str(v) for k, v in self.params.items()},
            "detail": self.detail,
        }


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB': limits in messages are read by people."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}".replace(".0 ", " ")
        value /= 1024
    raise AssertionError("unreachable")
