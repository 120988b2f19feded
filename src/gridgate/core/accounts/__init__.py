"""core.accounts."""
