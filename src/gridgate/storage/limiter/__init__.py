"""Rate limiters: the contract (``port.py``) and its two backends, exact in one process
(``memory.py``) or across processes and hosts (``redis.py`` with ``resp.py`` and ``lua/``;
``redispy.py`` runs it on redis-py instead, for issue 17's A/B).
"""
