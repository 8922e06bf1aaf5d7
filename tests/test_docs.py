"""The README and the guides in docs/, checked as a reader meets them.

The README stays a short front page; every relative link in it and in docs/ reaches a file that
exists and, when it names a heading (``#anchor``), a heading that exists, slugged as GitHub slugs
them. The guides cite nothing outside the repository and no machine's paths.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_MAX_LINES = 200

# [text](target) and ![alt](target), but not inside code spans or fenced blocks (stripped first).
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (letters of any script kept),
    spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match is None:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text(encoding="utf-8")))


def test_the_slug_is_githubs() -> None:
    assert slug("What a hidden-set run shows / 隠しテストセットでの実行で見えるもの") == (
        "what-a-hidden-set-run-shows--隠しテストセットでの実行で見えるもの"
    )
    assert slug("6. Abuse protection on the web side") == "6-abuse-protection-on-the-web-side"
    assert slug("Similarity: choosing the threshold") == "similarity-choosing-the-threshold"


def test_the_readme_is_a_short_front_page() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < README_MAX_LINES
    # The two commands come first: CI runs the second (.ci/run).
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    assert first_block.splitlines()[0].startswith("./scripts/run.sh")
    assert first_block.splitlines()[1].startswith("./scripts/test.sh")
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for account in ("admin@example.com", "instructor@example.com", "trainee@example.com"):
        assert account in text
    for guide in DOCS:
        assert f"docs/{guide.name}" in text, f"the README does not point to {guide.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_relative_link_reaches_a_file_and_a_heading(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif not resolved.is_relative_to(REPO):
            broken.append(f"{target}: outside the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no such heading in {resolved.name}")
    assert broken == [], f"{page.name}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_the_guides_cite_nothing_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert not re.search(r"(?<![\w.])/(work|root|home)/", text), "a machine's path in the docs"


def test_the_figures_say_what_load_they_ran_under() -> None:
    benchmarks = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", benchmarks, flags=re.MULTILINE)[1:]
    assert sections
    for section in sections:
        title = section.splitlines()[0]
        assert "bench/" in section or "scripts/" in section, f"{title}: no command"
        assert "load" in section, f"{title}: no load"
