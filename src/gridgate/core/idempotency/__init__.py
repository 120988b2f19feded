"""Exactly-once inference: ``Idempotency-Key`` claims and their answers (``keys.py``), and the
keyed answers running in this process, which duplicates follow (``flights.py``)."""
