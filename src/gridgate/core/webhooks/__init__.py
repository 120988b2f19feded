"""Webhooks: events an operator's billing system must act on, from a durable outbox."""
