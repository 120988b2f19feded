"""The exchange's rules, free of HTTP and SQL: one subpackage per concern (exchange, billing,
limits, health, catalog, accounts, people) and, at this root, what they all share (access,
audit_log, credentials, change_feed, outage, clock, times). docs/architecture.md maps it.
"""
