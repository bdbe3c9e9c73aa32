"""Errors of announcements and chat, outside HTTP.

TargetError(ValueError)          a notify target that is malformed or not allowed (at startup)
DeliveryError                    one try to deliver an announcement failed; it is retried
IrcParseError(ValueError)        a line from an IRC server that is not a message
"""

from __future__ import annotations


class TargetError(ValueError):
    """A notify target URL is malformed, of an unknown kind, or names a host not allowed."""


class DeliveryError(Exception):
    """One try to deliver an announcement failed (refused, timed out, not connected)."""


class IrcParseError(ValueError):
    """A line received from an IRC server is not a well-formed message."""
