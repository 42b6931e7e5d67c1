"""What invoking an endpoint can raise, on any backend.

Workflows tell the two apart: an InvocationError belongs to one request (that image gets an
error row, the others go on); an EndpointUnavailableError means nothing will get through, so
the run stops with one line naming the endpoint and how to bring it back.
"""

from __future__ import annotations

from dogbreed.errors import DogbreedError


class EndpointUnavailableError(DogbreedError):
    """The endpoint does not answer at all: never deployed, torn down, expired or killed."""


class InvocationError(DogbreedError):
    """The endpoint answered this request with an error (bad image, too large, timeout...)."""

    def __init__(self, message: str, status: int, error: str, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.detail = detail
