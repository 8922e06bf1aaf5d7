"""What the site does, apart from HTTP: the daily limit, storing uploads, pre-flight, submissions."""
