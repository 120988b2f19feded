"""Money on the request path: the worst-case quote and the exact charge (``billing.py``), the
per-process balance leases behind them (``leases.py``), and the usage writer.
"""
