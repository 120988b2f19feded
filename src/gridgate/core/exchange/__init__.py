"""The request path: plan a request, route it, try its offers (failover, hedging), relay and
settle it. ``exchange.py`` is the entry; its docstring says where each step lives.
"""
