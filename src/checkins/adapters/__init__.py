"""Adapters: the technologies behind the ports."""
