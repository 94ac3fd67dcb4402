"""The Ollama branch of the error tree: what went wrong talking to Ollama, and what to do.

These are the ``BackendError`` subclasses that ``backend/`` raises when it maps a transport
failure, an error status or a broken stream, with the helpers that name the model a caller most
likely meant. ``BackendError`` itself, and the whole tree drawn in its docstring, stay in
``errors.py``.
"""

from __future__ import annotations

from .errors import BackendError, Disposition


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

    disposition = Disposition.NOT_FOUND

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


class NotOllama(OllamaStatusError):
    """Something other than Ollama answers at its address: a web page (HTML), where Ollama speaks JSON."""

    def __init__(self, status: int, content_type: str, opening: str, url: str) -> None:
        self.status, self.error, self.url = status, f"{content_type}: {opening}", url
        kind = content_type or "no content type"
        BackendError.__init__(
            self,
            f"The server at {url} is not Ollama: it answered HTTP {status} ({kind}) with {opening!r}; "
            "set OLLAMA_HOST (or --ollama-host) to Ollama's address (by default 127.0.0.1:11434), "
            "or check that the proxy there reaches Ollama.",
        )


class StreamError(BackendError):
    """The answer stream broke after it had started."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(
            f"The answer stream from Ollama at {url} broke off: {detail}. "
            "Nothing was saved for this turn; try again."
        )


class PullFailed(BackendError):
    """Ollama could not pull ``model``: ``detail`` in its own words. For a name the registry does not
    know, ``pulled`` (when known) gives the closest local names."""

    def __init__(self, model: str, url: str, detail: str, pulled: list[str] | None = None) -> None:
        self.model = model
        self.url = url
        self.detail = detail
        self.pulled = pulled
        if unknown_manifest(detail):
            close = close_names(model, pulled or [])
            where = (
                f"closest pulled here: {', '.join(close)}; https://ollama.com/library lists the others"
                if close
                else "https://ollama.com/library lists them, e.g. 'llama3.1:8b'"
            )
            text = (
                f"Ollama at {url} found no model {model!r} in the registry ({detail}); check the name "
                f"and tag ({where})."
            )
        else:
            text = (
                f"Ollama at {url} could not pull {model!r}: {detail}. What was downloaded is kept; "
                "pull again to resume."
            )
        super().__init__(text)


def unknown_manifest(detail: str) -> bool:
    """Whether Ollama's pull error says the registry has no such model (or tag)."""
    text = detail.lower()
    return "manifest" in text and any(s in text for s in ("does not exist", "unknown", "not found"))


def close_names(name: str, names: list[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``names`` that ``name`` most likely meant: the same model with another tag
    first, then the nearest spellings."""
    import difflib

    base = name.split(":", 1)[0]
    found = [m for m in names if m.split(":", 1)[0] == base]
    found += difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    return list(dict.fromkeys(found))[:n]
