"""storage.limiter."""
