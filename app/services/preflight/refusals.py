"""Why a pre-flight ended without a submission, each reason with the HTTP status it is answered with.

A settled pre-flight stores the reason's ``key`` (the i18n key of its message) in its ``refusal``;
the upload request and the pre-flight's page answer with the same status whichever of them shows
it. One definition per reason, so the key and its status cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RefusalReason:
    key: str  # the i18n key of the message; stored in the pre-flight's ``refusal``
    status: int  # the HTTP status the upload is answered with


REFUSED = RefusalReason("upload_error_preflight", 422)  # the zip failed its pre-flight
NEAR_CHANCE = RefusalReason("upload_error_near_chance", 409)  # asks "upload it anyway?"
EXPIRED = RefusalReason("upload_error_confirmation_expired", 410)  # the question is gone: upload again
UNANSWERED = RefusalReason("upload_error_preflight_unanswered", 503)  # no worker settled it in time
INTERNAL = RefusalReason("upload_error_preflight_internal", 503)  # a fault of the server's
BUSY = RefusalReason("upload_error_preflight_busy", 429)  # the trainee's previous pre-flight still runs
RATE = RefusalReason("upload_error_preflight_rate", 429)  # over the hourly rate
QUOTA = RefusalReason("upload_error_quota", 429)  # today's uploads were used up meanwhile

_KNOWN = {reason.key: reason for reason in (REFUSED, NEAR_CHANCE, EXPIRED, UNANSWERED, INTERNAL, BUSY, RATE, QUOTA)}
SLOT_REFUSAL_STATUS = 403  # the slot could not be spent for another reason (``SubmissionRefused``)


def reason_for(key: str) -> RefusalReason:
    """The reason stored as ``key``: a known one, another refusal of the slot (403), or (a key this
    version does not know) the server's fault."""
    if key in _KNOWN:
        return _KNOWN[key]
    if key.startswith("upload_error_"):
        return RefusalReason(key, SLOT_REFUSAL_STATUS)
    return INTERNAL


def gate_reason(reason: str) -> RefusalReason:
    """The refusal of the gate (``gate.PreflightRefused.reason``: busy or rate)."""
    return BUSY if reason == "busy" else RATE


def slot_reason(reason: str) -> RefusalReason:
    """The refusal of ``spend_slot`` (``SubmissionRefused.reason``)."""
    return reason_for(f"upload_error_{reason}")
