"""core.limits."""
