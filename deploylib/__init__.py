"""Internals of deploy.py (see docs/deploy.md)."""
