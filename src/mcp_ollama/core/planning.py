"""Checking a turn's input before anything runs, with nothing about MCP in it.

``plan_turn`` turns a call's message, model, options, format and session into a ``TurnPlan``, or
raises an ``InputError`` subclass saying what is unusable. It reads nothing but the settings.
"""

from __future__ import annotations

from ..backend.models import GenerationOptions, Think
from ..config import Settings
from ..errors import InputError, InputTooLarge
from ..store import LOCAL, new_session_id, validate_session_id
from .images import ImageBatch
from .structured import Format, check_format
from .turns import TurnPlan


def plan_turn(
    settings: Settings,
    message: str,
    *,
    session_id: str | None = None,
    model: str | None = None,
    options: GenerationOptions | None = None,
    think: Think | None = None,
    format: Format | None = None,
    images: ImageBatch | None = None,
    include_thinking: bool = False,
    principal: str = LOCAL,
) -> TurnPlan:
    """Check a turn's input; raises ``InputError`` subclasses for anything unusable.

    ``images`` come checked already (``core.images.read_images``, which reads files).
    """
    _require_unicode("message", message)
    _require_unicode("model", model or "")
    for stop in (options.stop or []) if options else []:
        _require_unicode("options.stop", stop)
    if not message.strip():
        raise InputError("The message is empty: write something for the model to answer.")
    if len(message) > settings.max_message_chars:
        raise InputTooLarge(
            f"The message has {len(message):,} characters; the limit is "
            f"{settings.max_message_chars:,} (MCP_OLLAMA_MAX_MESSAGE_CHARS). Shorten it."
        )
    model_name = (model or settings.model).strip()
    if not model_name or len(model_name) > 200:
        raise InputError("The model name must be 1-200 characters, such as 'llama3:8b'.")
    if format is not None:
        check_format(format)
    sid = validate_session_id(session_id) if session_id is not None else new_session_id()
    return TurnPlan(
        message=message,
        session_id=sid,
        model=model_name,
        options=options,
        fresh=session_id is None,
        think=think,
        format=format,
        images=images if images is not None else ImageBatch(),
        include_thinking=include_thinking,
        principal=principal,
    )


def _require_unicode(name: str, value: str) -> None:
    """Refuse text that cannot travel as UTF-8 (a lone surrogate, legal in JSON escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"The {name} is not valid Unicode text (it holds a lone surrogate).") from None
