"""One error hierarchy: every error carries an HTTP status and a message safe to show users."""


class BeatfeedsError(Exception):
    """Base of every error beatfeeds raises on purpose."""

    http_status = 500
    user_message = "Something went wrong."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.user_message)
        self.message = message or self.user_message


class ConfigurationError(BeatfeedsError):
    """A setting is missing or has a value we cannot use."""


class NotFound(BeatfeedsError):
    http_status = 404
    user_message = "Not found."


class BeatNotFound(NotFound):
    user_message = "No such beat in the current beat map."


class AreaNotFound(NotFound):
    user_message = "No such area in the current beat map."


class EntryNotFound(NotFound):
    user_message = "No such entry, or it is not public."


class OutsideCoverage(NotFound):
    user_message = "That location is outside every beat."


class InvalidInput(BeatfeedsError):
    http_status = 400
    user_message = "The request was not valid."


class InvalidBoundary(BeatfeedsError):
    """A beat map failed validation; `problems` lists each beat code and reason."""

    http_status = 422
    user_message = "The beat map is not valid."

    def __init__(self, message: str | None = None, problems: list | None = None):
        super().__init__(message)
        self.problems = problems or []


class UnusableFile(BeatfeedsError):
    """An import file cannot be read at all (unknown columns, not a CSV...)."""

    http_status = 422
    user_message = "The file cannot be imported."


class NoActiveBeatMap(BeatfeedsError):
    http_status = 503
    user_message = "No beat map has been published yet."


class AuthError(BeatfeedsError):
    http_status = 401
    user_message = "Wrong email or password."


class TooManyAttempts(BeatfeedsError):
    http_status = 429
    user_message = "Too many failed sign-in attempts. Wait a few minutes and try again."


class TooManySignups(TooManyAttempts):
    user_message = (
        "Too many email alert requests from here or for this address. Wait an hour and try again."
    )


class Forbidden(BeatfeedsError):
    http_status = 403
    user_message = "You are not allowed to do that."


class Conflict(BeatfeedsError):
    http_status = 409
    user_message = "That conflicts with existing data."


class UploadTooLarge(BeatfeedsError):
    http_status = 413
    user_message = "The file is larger than this site accepts."


class PostingError(BeatfeedsError):
    """A service refused or failed a post (outbound accounts)."""

    http_status = 502
    user_message = "The service did not accept the post."


class TransientPostingError(PostingError):
    """Worth retrying later: network trouble, a 5xx, or a rate limit (`retry_at`, naive UTC)."""

    def __init__(self, message: str | None = None, retry_at=None):
        super().__init__(message)
        self.retry_at = retry_at


class PermanentPostingError(PostingError):
    """Retrying cannot help: bad credentials, a refused text, a deleted account."""


class PostOutcomeUnknown(PostingError):
    """The request may have reached a service that has no duplicate guard (X): retrying
    could post twice, so an admin has to look."""


class DatabaseUnavailable(BeatfeedsError):
    """The database refuses writes for now: read-only, locked by another writer, or busy."""

    http_status = 503
    user_message = "The database is read-only or busy; try again shortly."
    retry_after = 5  # seconds, sent as Retry-After
