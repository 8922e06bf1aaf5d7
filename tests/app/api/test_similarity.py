"""The similarity view: instructors of the cohort and admins only, on the page, the CSV and the API;
nothing of it on the pages trainees see (on SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.i18n import TEXT
from app.models import Cohort, SimilarityPair, Submission
from tests.app.api.conftest import World, add_submission, assert_error, call
from tests.app.conftest import add_user, csrf, login


@pytest.fixture
def pairs(db: Session, world: World) -> dict[str, int]:
    """In dl_tokyo_2: hanako and taro share weights (and agree in their mistakes), yamada and taro
    agree in their mistakes only, and a pair below the threshold that must not be listed."""
    people = world.people
    cohort = db.get(Cohort, people.cohort.id)
    assert cohort is not None
    yamada = add_user(db, "yamada@example.com")
    yamada.name = "山田 花子"
    low = add_user(db, "low@example.com")
    subs: dict[str, Submission] = {
        name: add_submission(db, user, cohort, accuracy=0.9)
        for name, user in (("hanako", people.trainee), ("taro", people.other_trainee), ("yamada", yamada), ("low", low))
    }

    def pair(a: str, b: str, rate: float, both: int, files: list[dict[str, object]]) -> None:
        users = {"hanako": people.trainee.id, "taro": people.other_trainee.id, "yamada": yamada.id, "low": low.id}
        (ua, sa), (ub, sb) = sorted([(users[a], subs[a].id), (users[b], subs[b].id)])
        db.add(
            SimilarityPair(
                cohort_id=cohort.id, user_a_id=ua, user_b_id=ub, submission_a_id=sa, submission_b_id=sb,
                both_wrong=both, same_wrong=round(rate * both), error_agreement=round(rate * both) / both,
                agreement=0.97, shared_files=files, shared_count=len(files),
            )
        )  # fmt: skip

    weights = {
        "kind": "weights", "sha256": "ab" * 32, "name_a": "mlp/katakana_model.pickle",
        "name_b": "kadai/katakana_model.pickle", "submission_a_id": subs["hanako"].id,
        "submission_b_id": subs["taro"].id,
    }  # fmt: skip
    pair("hanako", "taro", 1.0, 800, [weights])
    pair("yamada", "taro", 0.95, 700, [])
    pair("low", "hanako", 0.55, 900, [])
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
    rows = page.text.split('data-testid="similarity-pair"')[1:]
    assert len(rows) == 2  # the pair at 55 % is not listed
    first, second = rows
    assert "hanako" in first and "taro" in first  # identical files come first
    assert f'href="/submissions/{pairs["hanako"]}"' in first and f'href="/submissions/{pairs["taro"]}"' in first
    assert "mlp/katakana_model.pickle" in first and "kadai/katakana_model.pickle" in first
    assert "山田 花子" in second and "95.0%" in second and f'href="/submissions/{pairs["yamada"]}"' in second
    assert "low@example.com" not in page.text

    client.post("/language", data={"lang": "en", "next": "/", "csrf_token": csrf(client)})
    english = client.get(f"/cohorts/{cohort_id}/similarity")
    assert TEXT["en"]["sim_caution"] in english.text and TEXT["ja"]["sim_caution"] not in english.text

    response = client.get(f"/cohorts/{cohort_id}/similarity.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["trainee_a"], r["trainee_b"]) for r in table] == [("hanako", "taro"), ("taro", "山田 花子")]
    assert table[0]["shared_files"] == "weights:mlp/katakana_model.pickle=kadai/katakana_model.pickle"
    assert (table[1]["error_agreement"], table[1]["both_wrong"], table[1]["same_wrong"]) == ("0.9500", "700", "665")
    assert table[1]["above_threshold"] == "yes" and table[0]["submission_a"] == str(pairs["hanako"])


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
    assert (first["name_a"], first["name_b"]) == ("hanako", "taro")
    assert first["shared_files"][0]["kind"] == "weights" and first["error_agreement"] == 1.0
    assert (second["both_wrong"], second["same_wrong"], second["above_threshold"]) == (700, 665, True)
    stricter = call(client, "GET", f"/cohorts/{cohort_id}/similarity?threshold=0.99", world.admin_token).json()
    assert [i["name_b"] for i in stricter["items"]] == ["taro"]  # identical files are listed whatever the rate
    looser = call(client, "GET", f"/cohorts/{cohort_id}/similarity?threshold=0.5", world.admin_token).json()
    assert looser["total"] == 3

    for token in (world.instructor_token, world.other_instructor_token):
        assert_error(call(client, "GET", f"/cohorts/{cohort_id}/similarity", token), 403, "api_admin_only")
    assert_error(call(client, "GET", "/cohorts/999999/similarity", world.admin_token), 404, "api_not_found")
    assert call(client, "GET", f"/cohorts/{cohort_id}/similarity", None).status_code == 401

    doc = client.get("/openapi.json").json()
    operation = doc["paths"]["/api/v1/cohorts/{cohort_id}/similarity"]["get"]
    assert operation["summary"] and "not proof" in operation["description"]
