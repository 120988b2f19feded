"""The HTTP pieces both surfaces share — the APIs (``api/``) and the dashboard (``dashboard/``):
how a request body is read, and the session cookie a signed-in person carries."""
