"""Accounts and their API keys: the hot-path authenticator (``auth.py``), the audited
operations on accounts and keys, and what an account used (``usage_report.py``, ``usage_pages.py``).
"""
