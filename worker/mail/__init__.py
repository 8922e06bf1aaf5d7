"""Result emails: what they say (compose, texts), and how they leave (transport)."""
