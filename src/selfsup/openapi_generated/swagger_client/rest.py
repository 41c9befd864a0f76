"""The exception the API client raises for error responses (lightly's ``ApiException``)."""

from __future__ import annotations


class ApiException(Exception):  # noqa: N818  (lightly's name, kept for users catching it)
    """The server answered with an error.

    Attributes:
        status: HTTP status (e.g. 404).
        code: the server's machine-readable code (e.g. ``NOT_FOUND``, ``INVALID_CONFIG``).
        message: the server's explanation.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def reason(self) -> str:
        """lightly's name for the message."""
        return self.message
