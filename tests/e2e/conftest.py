"""End-to-end tests run the whole live service: see tests/fixtures/live_service.py."""
