"""The similarity view: instructors of the cohort and admins only, on the page, the CSV and the API;
nothing of it on the pages trainees see (on SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.i18n import TEXT
from app.models import Cohort, SimilarityPair, Submission, SubmissionFile
from tests.app.api.conftest import World, add_submission, assert_error, call
from tests.app.conftest import add_user, csrf, login


@pytest.fixture
def pairs(db: Session, world: World) -> dict[str, int]:
    """In dl_tokyo_2: hanako and taro hand in the same weights (only they do), yamada and taro have a
    copy index far above the threshold, low and hanako one below it, and low and yamada share code
    that four trainees hand in (course material: not evidence, not listed)."""
    people = world.people
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    yamada = add_user(db, "yamada@example.com")
    yamada.name = "山田 花子"
    low = add_user(db, "low@example.com")
    users = {"hanako": people.trainee, "taro": people.other_trainee, "yamada": yamada, "low": low}
    subs: dict[str, Submission] = {name: add_submission(db, user, cohort, accuracy=0.9) for name, user in users.items()}

    def digest(name: str, kind: str, sha: str, path: str) -> None:
        db.add(SubmissionFile(submission_id=subs[name].id, cohort_id=cohort.id, user_id=users[name].id, kind=kind,
                              name=path, sha256=sha))  # fmt: skip

    for name in users:
        digest(name, "code", "cd" * 32, f"{name}/submit_katakana.py")
    digest("hanako", "weights", "ab" * 32, "mlp/katakana_model.pickle")
    digest("taro", "weights", "ab" * 32, "kadai/katakana_model.pickle")

    def pair(a: str, b: str, lift: float, files: list[dict[str, object]]) -> None:
        (ua, sa), (ub, sb) = sorted([(users[a].id, subs[a].id), (users[b].id, subs[b].id)])
        db.add(
            SimilarityPair(
                cohort_id=cohort.id, user_a_id=ua, user_b_id=ub, submission_a_id=sa, submission_b_id=sb,
                both_wrong=800, same_wrong=700, error_agreement=700 / 800, agreement=0.97,
                expected_same_wrong=350.0, lift=lift, lift_se=0.1, same_wrong_easy=120, reference_trainees=2,
                shared_files=files, shared_count=len(files),
            )
        )  # fmt: skip

    def shared(kind: str, sha: str, a: str, b: str) -> dict[str, object]:
        first, second = sorted((a, b), key=lambda n: users[n].id)
        return {"kind": kind, "sha256": sha, "name_a": f"{first}/x", "name_b": f"{second}/x",
                "submission_a_id": subs[first].id, "submission_b_id": subs[second].id}  # fmt: skip

    pair("hanako", "taro", 0.2, [shared("weights", "ab" * 32, "hanako", "taro")])
    pair("yamada", "taro", 4.0, [])
    pair("low", "hanako", 2.2, [])  # z about 2: listed only at a looser false-alarm rate
    pair("low", "yamada", 0.1, [shared("code", "cd" * 32, "low", "yamada")])
    db.commit()
    return {name: s.id for name, s in subs.items()} | {"yamada_user": yamada.id, "low_user": low.id}


def test_instructor_of_the_cohort_sees_the_pairs_with_links_files_and_the_caution(
    client: TestClient, world: World, pairs: dict[str, int]
) -> None:
    login(client, world.people.instructor.email)
    cohort_id = world.people.cohort.id
    page = client.get(f"/cohorts/{cohort_id}/similarity")
    assert page.status_code == 200
    assert TEXT["ja"]["sim_caution"] in page.text  # Japanese by default
    assert "1,000 組に 1 組以下" in page.text and 'data-testid="similarity-small"' in page.text
    rows = page.text.split('data-testid="similarity-pair"')[1:]
    assert len(rows) == 2  # the pair below the threshold and the pair sharing course code are not listed
    first, second = rows
    assert "hanako" in first and "taro" in first  # rare identical weights come first
    assert f'href="/submissions/{pairs["hanako"]}"' in first and f'href="/submissions/{pairs["taro"]}"' in first
    assert 'data-kind="weights" data-trainees="2" data-counts="yes"' in first
    assert "山田 花子" in second and 'data-above="yes"' in second and f'href="/submissions/{pairs["yamada"]}"' in second
    assert "700（独立なら期待値 350.0）" in second and "うちコースの大半が正解する画像で 120" in second
    assert "low@example.com" not in page.text

    client.post("/language", data={"lang": "en", "next": "/", "csrf_token": csrf(client)})
    english = client.get(f"/cohorts/{cohort_id}/similarity")
    assert TEXT["en"]["sim_caution"] in english.text and TEXT["ja"]["sim_caution"] not in english.text
    assert "at most one pair in 1,000" in english.text

    response = client.get(f"/cohorts/{cohort_id}/similarity.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["trainee_a"], r["trainee_b"]) for r in table] == [("hanako", "taro"), ("taro", "山田 花子")]
    assert table[0]["shared_files"] == "weights:hanako/x=taro/x (2 trainees)"
    assert (table[1]["same_wrong"], table[1]["expected_same_wrong"], table[1]["same_wrong_easy"]) == (
        "700",
        "350.0",
        "120",
    )
    assert float(table[1]["copy_index_z"]) >= float(table[1]["z_needed"]) and table[1]["above_threshold"] == "yes"
    assert table[0]["submission_a"] == str(pairs["hanako"]) and table[1]["error_agreement"] == "0.8750"


def test_admins_see_every_cohort_and_nobody_else_does(client: TestClient, world: World, pairs: dict[str, int]) -> None:
    cohort_id = world.people.cohort.id
    for email in (world.people.trainee.email, world.other_instructor.email, world.other_trainee.email):
        client.cookies.clear()
        login(client, email)
        for path in (f"/cohorts/{cohort_id}/similarity", f"/cohorts/{cohort_id}/similarity.csv"):
            response = client.get(path, headers={"Accept": "application/json"})
            assert response.status_code == 404, (email, path)
            assert "hanako" not in response.text
    client.cookies.clear()
    login(client, world.people.admin.email)
    assert client.get(f"/cohorts/{cohort_id}/similarity").status_code == 200
    other = client.get(f"/cohorts/{world.other_cohort.id}/similarity")
    assert other.status_code == 200 and 'data-testid="similarity-empty"' in other.text


def test_nothing_of_it_reaches_the_pages_trainees_see(
    client: TestClient, db: Session, world: World, pairs: dict[str, int]
) -> None:
    cohort = db.get(Cohort, world.people.cohort.id)
    assert cohort is not None
    cohort.leaderboard_visible = True
    db.commit()
    login(client, world.people.trainee.email)
    pages = [
        client.get(f"/cohorts/{cohort.id}/leaderboard"),  # the anonymised leaderboard
        client.get(f"/submissions/{pairs['hanako']}"),
        client.get("/submissions"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert "similarity" not in page.text
        assert TEXT["ja"]["nav_similarity"] not in page.text and TEXT["ja"]["sim_caution"] not in page.text
        assert "katakana_model.pickle" not in page.text
    detail = call(client, "GET", f"/submissions/{pairs['hanako']}", world.admin_token).json()
    assert "predictions" not in detail and "file_hashes" not in detail


def test_api_gives_admins_the_pairs_and_refuses_instructor_tokens(
    client: TestClient, world: World, pairs: dict[str, int]
) -> None:
    cohort_id = world.people.cohort.id
    body = call(client, "GET", f"/cohorts/{cohort_id}/similarity", world.admin_token).json()
    assert body["total"] == 2
    first, second = body["items"]
    assert (first["name_a"], first["name_b"]) == ("hanako", "taro") and not first["above_threshold"]
    assert first["shared_files"][0] | {"sha256": ""} == first["shared_files"][0] | {
        "kind": "weights", "trainees": 2, "counts": True, "sha256": ""
    }  # fmt: skip
    assert (second["same_wrong"], second["expected_same_wrong"], second["above_threshold"]) == (700, 350.0, True)
    assert second["z"] >= second["z_needed"] and second["compared_pairs"] == 1
    stricter = f"/cohorts/{cohort_id}/similarity?false_alarm_rate=1e-12"
    assert [i["name_b"] for i in call(client, "GET", stricter, world.admin_token).json()["items"]] == ["taro"]
    looser = f"/cohorts/{cohort_id}/similarity?false_alarm_rate=0.05"
    assert call(client, "GET", looser, world.admin_token).json()["total"] == 3
    refused = call(client, "GET", f"/cohorts/{cohort_id}/similarity?false_alarm_rate=0.5", world.admin_token)
    assert refused.status_code == 422

    for token in (world.instructor_token, world.other_instructor_token):
        assert_error(call(client, "GET", f"/cohorts/{cohort_id}/similarity", token), 403, "api_admin_only")
    assert_error(call(client, "GET", "/cohorts/999999/similarity", world.admin_token), 404, "api_not_found")
    assert call(client, "GET", f"/cohorts/{cohort_id}/similarity", None).status_code == 401

    doc = client.get("/openapi.json").json()
    operation = doc["paths"]["/api/v1/cohorts/{cohort_id}/similarity"]["get"]
    assert operation["summary"] and "not proof" in operation["description"]
