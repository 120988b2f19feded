"""The HTTP edge: the public Consumption API (``consumption/``), the management API
(``manage/``), operators' endpoints (``ops.py``) and the error boundary (``errors.py``).
"""
