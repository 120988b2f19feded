"""Storage: the narrow ports core asks for (``ports/``), the SQL store behind them (``sql/``),
the rate limiters (``limiter/``), the schema and its migrations, and the usage spool.
"""
