"""People: users, passwords, browser sessions and management tokens (``directory.py``), the
authorised operations on them, and signing in.
"""
