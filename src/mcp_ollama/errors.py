"""The domain's error tree: every failure the server can tell a user about.

Each error's message is written for the person (or model) reading a failed tool
result: what happened, and what to do about it. ``server.py`` is the one place
that turns these into MCP ``isError`` results or JSON-RPC errors.

    McpOllamaError
    ├── BackendError                 talking to Ollama failed
    │   ├── OllamaUnreachable        connection refused / DNS / connect timeout
    │   ├── OllamaTimeout            no bytes within the generation timeout
    │   ├── ModelNotFound            404: the model is not pulled
    │   ├── OllamaStatusError        any other error status, with Ollama's ``error`` text
    │   └── StreamError              an error line mid-stream, a cut or malformed stream
    ├── InputError                   the caller's arguments cannot be served
    │   ├── InvalidSessionId         malformed or hostile session id
    │   ├── InputTooLarge            the message does not fit the limits or the context
    │   └── ModelCannot              the model lacks a capability (thinking, vision) the call needs
    ├── AnswerNotJson                JSON was asked for (format) and the model wrote something else
    ├── SessionNotFound              no stored session with that id
    └── StoreError                   the session database cannot be read or written
"""

from __future__ import annotations


class McpOllamaError(Exception):
    """Base of every error this package raises on purpose."""


class BackendError(McpOllamaError):
    """Talking to Ollama failed."""


class OllamaUnreachable(BackendError):
    """Ollama did not accept a connection at ``url``."""

    def __init__(self, url: str, detail: str = "") -> None:
        self.url = url
        self.detail = detail
        reason = f" ({detail})" if detail else ""
        super().__init__(
            f"Cannot reach Ollama at {url}{reason}. Is it running? Start it with "
            "`ollama serve`, or point OLLAMA_HOST at the right address."
        )


class OllamaTimeout(BackendError):
    """Ollama accepted the request but sent nothing for ``seconds``."""

    def __init__(self, url: str, seconds: float) -> None:
        self.url = url
        self.seconds = seconds
        super().__init__(
            f"Ollama at {url} sent nothing for {seconds:g} s and the request was abandoned. "
            "The model may still be loading or the machine may be overloaded; try again, "
            "or raise the timeout with --generation-timeout / MCP_OLLAMA_GENERATION_TIMEOUT."
        )


class ModelNotFound(BackendError):
    """Ollama answered 404 for ``model``: it is not pulled.

    ``pulled`` (when known) names the models that are, and the closest one is suggested.
    """

    def __init__(self, model: str, url: str, pulled: list[str] | None = None) -> None:
        self.model = model
        self.url = url
        self.pulled = pulled
        text = f"Model {model!r} is not available in Ollama at {url}."
        if pulled:
            guess = closest_name(model, pulled)
            if guess is not None:
                text += f" Did you mean {guess!r}?"
            shown = ", ".join(pulled[:20]) + (f" and {len(pulled) - 20} more" if len(pulled) > 20 else "")
            text += f" Pulled models: {shown}."
        elif pulled is not None:
            text += " No model is pulled yet."
        super().__init__(
            f"{text} Pull it with `ollama pull {model}`, or choose a pulled model (`ollama list`)."
        )


def closest_name(name: str, names: list[str]) -> str | None:
    """The pulled model ``name`` most likely meant: the same name with a tag, else the nearest spelling."""
    import difflib

    base = name.split(":", 1)[0]
    same_base = [n for n in names if n.split(":", 1)[0] == base]
    if same_base:
        return same_base[0]
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if not found:
        bases = {n.split(":", 1)[0]: n for n in names}
        near = difflib.get_close_matches(base, list(bases), n=1, cutoff=0.6)
        found = [bases[near[0]]] if near else []
    return found[0] if found else None


class OllamaStatusError(BackendError):
    """Ollama answered an error status with ``{"error": ...}``."""

    def __init__(self, status: int, error: str, url: str) -> None:
        self.status = status
        self.error = error
        self.url = url
        hint = ""
        if status in (401, 403):
            hint = (
                " Check the user and password in OLLAMA_HOST (http://user:password@host:port) or "
                "the key in OLLAMA_API_KEY."
            )
        elif status in (429, 503):
            hint = " Ollama is busy; try again in a moment."
        elif status >= 500:
            hint = " Check Ollama's own log (`journalctl -u ollama` or the terminal running `ollama serve`)."
        super().__init__(f"Ollama at {url} answered HTTP {status}: {error}.{hint}")


class StreamError(BackendError):
    """The answer stream broke after it had started."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(
            f"The answer stream from Ollama at {url} broke off: {detail}. "
            "Nothing was saved for this turn; try again."
        )


class InputError(McpOllamaError):
    """The caller's arguments cannot be served as given."""


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

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"No chat session with id {session_id!r}.")


class JobFailed(McpOllamaError):
    """Something outside the domain's error tree broke a job; the message says what to do."""


class StoreError(McpOllamaError):
    """The session database at ``path`` could not be read or written; ``cause`` says why and what to do."""

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"The session database {path} could not be used: {cause}")


class SettingsError(ValueError):
    """A flag or environment variable has a value we cannot use; the message never holds a secret."""
