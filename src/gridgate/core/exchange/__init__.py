"""core.exchange."""
