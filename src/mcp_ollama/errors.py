"""The domain's error tree: every failure the server can tell a user about.

Each error's message is written for the person (or model) reading a failed tool
result: what happened, and what to do about it. Each class also says how MCP should
carry it (``disposition``); ``server/errors.py`` is the one place that turns these into
``isError`` tool results or JSON-RPC errors. In a tool every one of them is an ``isError``
result (the model reads it); elsewhere (resources, prompts, tasks) the disposition picks the
code: ``INVALID_PARAMS`` -32602, ``NOT_FOUND`` -32002 for a resource (-32602 from 2026-07-28,
and for anything else), ``FAILED`` -32603.

    McpOllamaError                   (FAILED unless a subclass says otherwise)
    ├── BackendError                 talking to Ollama failed (the subclasses are in backend_errors.py)
    │   ├── OllamaUnreachable        connection refused / DNS / connect timeout
    │   ├── OllamaTimeout            no bytes within the generation timeout
    │   ├── ModelNotFound            404: the model is not pulled                       NOT_FOUND
    │   ├── OllamaStatusError        any other error status, with Ollama's ``error`` text
    │   │   └── NotOllama            a web page (HTML) at Ollama's address: something else answers
    │   ├── StreamError              an error line mid-stream, a cut or malformed stream
    │   └── PullFailed               a pull that Ollama refused or broke off (an unknown name)
    ├── InputError                   the caller's arguments cannot be served        INVALID_PARAMS
    │   ├── InvalidSessionId         malformed or hostile session id
    │   ├── InputTooLarge            the message does not fit the limits or the context
    │   └── ModelCannot              the model lacks a capability (thinking, vision) the call needs
    ├── TooManyWaiting               one user already has the most chats allowed waiting for a slot
    ├── LimitReached                 one user already holds the most of something allowed per user
    ├── AnswerNotJson                JSON was asked for (format) and the model wrote something else
    ├── SessionNotFound              no stored session with that id                     NOT_FOUND
    ├── JobFailed                    something outside this tree broke a running answer
    ├── NotAllowed                   the caller's token lacks the role (admin) an action needs
    ├── StoreError                   the session database cannot be read or written
    ├── TokenFileError               (transports.auth) the HTTP tokens file is unusable
    ├── ExposureError                (transports.exposure) an HTTP bind that would be unsafe
    └── ListenError                  (transports.listen) serve --http cannot listen: its port is taken

    SettingsError (a ValueError)     a flag or variable has an unusable value; the CLI prints it
                                     and exits 2 before any server exists, so it has no disposition
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class Disposition(StrEnum):
    """How MCP carries an error outside a tool (inside one, every error is an ``isError`` result)."""

    FAILED = "failed"
    """The call was fine and could not be served: -32603 with the error's sentence."""
    INVALID_PARAMS = "invalid_params"
    """The caller's arguments cannot be served: -32602."""
    NOT_FOUND = "not_found"
    """What the call names does not exist: the era's resource-not-found code, else -32602."""


class McpOllamaError(Exception):
    """Base of every error this package raises on purpose."""

    disposition: ClassVar[Disposition] = Disposition.FAILED


class BackendError(McpOllamaError):
    """Talking to Ollama failed."""


class InputError(McpOllamaError):
    """The caller's arguments cannot be served as given."""

    disposition = Disposition.INVALID_PARAMS


class InvalidSessionId(InputError):
    """A session id that is not of the allowed form."""

    def __init__(self, session_id: str) -> None:
        shown = session_id if len(session_id) <= 80 else session_id[:77] + "..."
        self.session_id = session_id
        super().__init__(
            f"Invalid session id {shown!r}: use 1-64 characters from letters, digits, '-' and '_'."
        )


class InputTooLarge(InputError):
    """The message does not fit the configured limits or the model's context."""


class ModelCannot(InputError):
    """The model lacks a capability the call needs (thinking, vision); ``able`` can."""

    def __init__(self, model: str, doing: str, capability: str, able: list[str], example: str) -> None:
        self.model = model
        self.capability = capability
        self.able = able
        if able:
            advice = f"Pulled models that can: {', '.join(able[:10])}."
        else:
            advice = f"No pulled model can; pull one with `ollama pull {example}`."
        super().__init__(
            f"{model} cannot {doing} (it lacks Ollama's {capability!r} capability). {advice} "
            "Pass one of them as `model`, or call without it."
        )


class TooManyWaiting(McpOllamaError):
    """The caller already has ``waiting`` chats queued for a model slot (``--max-queued-per-user``)."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
        verb = "is" if waiting == 1 else "are"
        super().__init__(
            f"{waiting} of your chats {verb} already waiting for a free model slot; "
            "try again when one of them finishes."
        )


class LimitReached(McpOllamaError):
    """A per-user bound (streams, tasks, …) is reached: the others on a shared server keep theirs."""

    def __init__(self, noun: str, state: str, limit: int, setting: str, advice: str) -> None:
        """``noun`` (singular) and its ``state``: ``"task"``, ``"running"``."""
        self.limit = limit
        plural = "" if limit == 1 else "s"
        super().__init__(
            f"You already have {limit:,} {noun}{plural} {state}, the most one user may have on this "
            f"server ({setting}); {advice}"
        )


class AnswerNotJson(McpOllamaError):
    """The model was asked for JSON (``format``) and wrote something else; ``raw`` is what it wrote."""

    def __init__(self, model: str, problem: str, raw: str) -> None:
        self.raw = raw
        self.problem = problem
        shown = raw if len(raw) <= 4000 else raw[:4000] + "…"
        super().__init__(
            f"{model} was asked for JSON but its answer {problem}. Nothing was stored; call chat again "
            f"(a lower temperature helps), or relax the schema. The model wrote:\n{shown}"
        )


class SessionNotFound(McpOllamaError):
    """No stored session has this id."""

    disposition = Disposition.NOT_FOUND

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"No chat session with id {session_id!r}.")


class JobFailed(McpOllamaError):
    """Something outside the domain's error tree broke a job; the message says what to do."""


class NotAllowed(McpOllamaError):
    """``principal`` may not do this: pulling and unloading models change a shared machine, so only
    admin tokens (and the operator, ``local``) may."""

    def __init__(self, principal: str, doing: str) -> None:
        self.principal = principal
        super().__init__(
            f"Only an admin may {doing} on this server and the token {principal!r} is not one: ask the "
            "operator to do it, or to give you an admin token (mcp-ollama tokens add NAME --admin)."
        )


class StoreError(McpOllamaError):
    """The session database at ``path`` could not be read or written; ``cause`` says why and what to do."""

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"The session database {path} could not be used: {cause}")


class SettingsError(ValueError):
    """A flag or environment variable has a value we cannot use; the message never holds a secret."""
