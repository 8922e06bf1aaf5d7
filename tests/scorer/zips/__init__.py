"""A corpus of uploads (good, odd and hostile zips), each built programmatically from readable text."""
