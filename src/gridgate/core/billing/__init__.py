"""core.billing."""
