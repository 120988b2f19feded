"""The management API (``/api/v1``): ``routes.py`` is its one route table (served by
``app.py``, documented by ``openapi.py``); one handler module per resource.
"""
