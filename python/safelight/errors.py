"""Exception classes. Every message says what was wrong and what to do."""

from __future__ import annotations


class SafelightError(Exception):
    """Base class of every error raised by safelight."""


class InputError(SafelightError, ValueError):
    """An input array, image, file or argument is not acceptable."""


class EncodingRangeError(InputError):
    """A value is NaN, infinite or too large for the fixed-point ring."""


class ConfigError(SafelightError):
    """A cluster configuration or certificate set is missing or inconsistent."""


class ProgramError(SafelightError):
    """A Program is malformed: unknown op, wrong shapes, mismatched scales."""


class UnsupportedError(SafelightError):
    """The requested operation is not available with this scheme or party count."""


class ProtocolError(SafelightError):
    """A peer sent a malformed, unexpected or unauthenticated message."""


class PeerUnavailableError(SafelightError, ConnectionError):
    """A server could not be reached, died, or did not answer within the timeout."""


class JobFailedError(SafelightError):
    """A server reported that it could not run the job (the message says why)."""


class ResourceLimitError(JobFailedError):
    """A server refused a job or a message that exceeds its limits (memory budget, job
    count, message size); the message says which limit and how to stay within it."""


class JobAbortedError(JobFailedError):
    """A job was stopped because another participant failed (the message names the cause)."""


class TrustModelError(UnsupportedError):
    """The job would run under a weaker trust model than the one chosen (e.g. a client
    dealing the randomness that masks a model owner's weights); the message names the ways out."""
