"""Rate-limit policy: the gate of each request (``guard.py``), which limits apply (``rules.py``),
operators' overrides, and login throttling. The limiters themselves: ``storage/limiter/``.
"""
