"""Entrypoints: the command line and the HTTP app."""
