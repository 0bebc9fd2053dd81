"""The exceptions of esmeperf: one root, narrow subclasses, each with a one-line message."""


class EsmePerfError(Exception):
    """Root of every error esmeperf raises on purpose."""


class UsageError(EsmePerfError):
    """Bad arguments to esmeperf-compare or esmeperf-plot, or a path that is no run (exit
    status 2); the message is one line."""


class ConfigError(EsmePerfError):
    """Bad command line or config.json; the run never starts (exit status 2)."""


class TargetStartError(EsmePerfError):
    """The embedded target could not be started."""


class RequestError(EsmePerfError):
    """A REST call failed: transport error, unexpected status or unexpected body."""


class UnexpectedStatus(RequestError):
    """A REST call answered with a status other than the one ESME's test requires."""

    def __init__(self, url: str, got: int, expected: int, body: str = "",
                 colon: bool = True) -> None:
        # The wording is the Go test's, so logs of both tools read alike (its chat-request
        # check says "instead of 200", without the colon); the body's start is our addition.
        detail = f" ({body[:200]})" if body else ""
        of = "instead of:" if colon else "instead of"
        super().__init__(f"{url}: responded with status code: {got} {of} {expected}{detail}")
        self.url, self.got, self.expected, self.body = url, got, expected, body


class WebSocketFailure(EsmePerfError):
    """A WebSocket could not be opened or broke while in use."""


class ServerErrorFrame(WebSocketFailure):
    """The Messenger API answered with an `error` frame."""


class ChatWaitTimeout(WebSocketFailure):
    """A participant did not learn its chat id in time."""
