"""Fixtures shared by the whole suite live in tests/fixtures/; this file only registers them."""

pytest_plugins = [
    "tests.fixtures.artifacts",
    "tests.fixtures.db",
    "tests.fixtures.services",
    "tests.fixtures.browser",
    "tests.fixtures.live_service",
    "tests.fixtures.markers",
]
