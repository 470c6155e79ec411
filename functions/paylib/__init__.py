"""Shared code of the payment functions (packaged beside every function's app.py)."""
