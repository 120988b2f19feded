"""api.consumption."""
