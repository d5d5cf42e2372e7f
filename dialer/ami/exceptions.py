"""Errors raised by the AMI connection and supervisor.

Every error that ends a pending action says which action it was and what is known about
its fate, because the dialer must decide by itself (never by a silent retry) whether a
customer may already be ringing.
"""

from __future__ import annotations


class AmiError(Exception):
    """Base class of every AMI-layer error."""


class AmiDisconnected(AmiError):
    """The link is down: raised by `send` on a closed link, and set on every action that
    was still waiting for its response when the link dropped. Such an action's fate is
    unknown and it is not re-sent."""


class AmiTimeout(AmiError):
    """No response arrived within the timeout. The action may still have been executed."""


class AmiAuthError(AmiError):
    """Login refused (wrong secret, unknown user, or the server closed the link)."""


class AmiActionError(AmiError):
    """Asterisk answered `Response: Error` to an action sent with `check=True`."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action} failed: {message}")
        self.action = action
        self.message = message
