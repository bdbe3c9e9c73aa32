"""Errors of the aggregator.

AggregatorError
 └── QueryError(ValueError)   a query parameter is missing or malformed (HTTP 400)
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of every aggregator error."""


class QueryError(AggregatorError, ValueError):
    """A query cannot be run as asked; the message says which parameter to fix and how."""

    status = 400

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
