"""Shared code of the payment functions (packaged beside every function's app.py).

`aws` (and so boto3) is imported first, whichever module of the package a function imports:
on a cold start, boto3 imported before the rest of the package costs measurably less than the
same imports in another order (benchmarks/cold_start.py; figures in docs/payments.md).
"""
from . import aws  # noqa: F401  (import order, see above)
