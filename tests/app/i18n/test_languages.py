"""Japanese first, with an English switch; both tables hold the same messages."""

from __future__ import annotations

import string
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.i18n import TEXT
from app.models import Language, User
from app.settings import Settings
from tests.app.conftest import People, csrf, login


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    assert TEXT["ja"].keys() == TEXT["en"].keys()
    for key in TEXT["ja"]:
        assert _fields(TEXT["ja"][key]) == _fields(TEXT["en"][key]), key


def test_pages_are_japanese_by_default_and_switch_to_english(client: TestClient, people: People, db: Session) -> None:
    page = client.get("/login")
    assert '<html lang="ja">' in page.text and "ログイン" in page.text
    response = client.post(
        "/language", data={"lang": "en", "next": "/login", "csrf_token": csrf(client)}, follow_redirects=False
    )
    assert response.status_code == 303
    page = client.get("/login")
    assert '<html lang="en">' in page.text and "Log in" in page.text

    # A signed-in user's choice is stored on the account and follows them.
    login(client, people.trainee.email)
    client.post("/language", data={"lang": "en", "next": "/upload", "csrf_token": csrf(client)})
    db.expire_all()
    user = db.get(User, people.trainee.id)
    assert user is not None and user.language == Language.EN
    client.cookies.delete("katakana_lang")
    upload_page = client.get("/upload").text
    assert "Uploads left today: 3 of 3" in upload_page
    assert "resets 00:00 JST, in" in upload_page
    client.post("/language", data={"lang": "ja", "next": "/upload", "csrf_token": csrf(client)})
    upload_page = client.get("/upload").text
    assert "今日の残り提出回数: 3 / 3 回" in upload_page
    assert "00:00（JST）にリセット" in upload_page


def test_upload_page_shows_the_runtime_versions(client: TestClient, people: People) -> None:
    login(client, people.trainee.email)
    page = client.get("/upload").text
    assert 'data-testid="runtime-versions"' in page
    assert "Python 3." in page


def test_upload_page_shows_what_the_tensorflow_runtime_offers_and_whether_the_cohort_allows_it(
    client: TestClient, people: People, db: Session, settings: Settings, tmp_path: Path
) -> None:
    login(client, people.trainee.email)
    keras = client.get("/upload").text.split('data-testid="runtime-keras">', 1)[1].split("</dd>", 1)[0]
    assert "TensorFlow 2." in keras and "Keras 3." in keras and "TensorFlow の採点環境" in keras
    assert "このコースでは" not in keras
    people.cohort.runtimes = ["numpy"]
    db.commit()
    keras = client.get("/upload").text.split('data-testid="runtime-keras">', 1)[1].split("</dd>", 1)[0]
    assert "TensorFlow 2." in keras and "NumPy" in keras and "回数" in keras  # refused at the check, nothing spent
    # A server set up without it (or whose TensorFlow runtime cannot be asked) says it is not there.
    settings.tensorflow_runtime_python = tmp_path / "no-tensorflow" / "bin" / "python"
    keras = client.get("/upload").text.split('data-testid="runtime-keras">', 1)[1].split("</dd>", 1)[0]
    assert "TensorFlow 2." not in keras and "インストールされていません" in keras


def test_each_language_is_written_in_that_language_only() -> None:
    """No English sentence fragments in Japanese text (「Test accuracy（正解率）」) and no Japanese or
    full-width brackets in English text: code names, file names and units are the only exceptions."""
    import re

    code_words = {
        "Python", "NumPy", "submit_katakana", "ipynb", "train_data", "npy", "pip", "install", "zip", "SHA",
        "JST", "English", "docs", "predict", "test_data", "func_predict", "test_label", "scorer", "katakana",
        "MiB", "GiB", "CSV", "API", "URL", "makedataset", "PNG", "pandas", "read_csv",
        "TensorFlow", "Keras", "tensorflow", "keras", "import",  # the second runtime and the code that picks it
        "name", "email", "role", "reading", "trainee", "instructor",  # the enrolment CSV's header and values
    }  # fmt: skip
    for key, text in TEXT["ja"].items():
        if key.startswith(("api_", "docs_")) or key == "switch_language":
            continue  # the API's messages and its reference page quote fields and headers by their names
        words = set(re.findall(r"[A-Za-z_]{3,}", re.sub(r"\{\w+\}", "", text)))
        assert words <= code_words, (key, words - code_words)
    for key, text in TEXT["en"].items():
        if key == "switch_language":
            continue  # 日本語, written in the language it switches to
        text = re.sub(r"\d+ [アイウエオカキクケコサシスセソ]", "", text)  # class ids with their labels: data
        assert not re.search(r"[\u3000-\u30ff\u4e00-\u9fff\uff01-\uff60]", text), key
