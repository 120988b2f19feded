"""Upstream adapters, one module per wire format (``openai.py``, ``anthropic/``), behind the
small interface of ``base.py``; failures are translated once (``failures.py``).
"""
