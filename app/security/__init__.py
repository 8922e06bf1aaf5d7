"""Authentication pieces: password hashing, sessions, CSRF, login throttling, one-time links."""
