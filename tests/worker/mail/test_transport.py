"""Mail leaves over real SMTP, or lands in the mail folder exactly once per idempotency key."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from app.settings import Settings
from tests.fixtures.services import SmtpServer
from worker.mail.transport import OutgoingMail, deliver, message_id

MAIL = OutgoingMail("result:7", "taro@example.test", "件名 ✓", "本文です", "<p>本文です</p>")


def test_the_mail_folder_gets_one_file_per_key_however_often_it_is_delivered(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    deliver(MAIL, settings, timeout=5)
    deliver(MAIL, settings, timeout=5)
    assert settings.mail_dir is not None
    (eml,) = settings.mail_dir.iterdir()  # no temporary files left behind either
    message = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert message["Subject"] == "件名 ✓" and message["To"] == "taro@example.test"
    assert message.get_body(("plain",)).get_content().strip() == "本文です"  # type: ignore[union-attr]
    assert message["Message-ID"] == message_id("result:7", settings.mail_from)


def test_smtp_delivery_reaches_a_real_server(tmp_path: Path, smtp_server: SmtpServer) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, smtp_host="127.0.0.1", smtp_port=smtp_server.port
    )
    deliver(MAIL, settings, timeout=5)
    (message,) = smtp_server.wait_for_messages(1)
    assert message["Subject"] == "件名 ✓"
    assert message.get_body(("html",)).get_content().strip() == "<p>本文です</p>"
    assert not (tmp_path / "mail").exists()  # SMTP configured: nothing in the folder
