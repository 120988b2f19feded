"""api.manage."""
