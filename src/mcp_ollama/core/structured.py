"""JSON answers: a model asked for JSON (Ollama's ``format``) is held to it.

``format`` is ``"json"`` (any JSON value) or a JSON Schema the value must match. The schema is
checked when the call comes in, the answer when it is complete. ``jsonschema`` (a dependency of
the MCP SDK already) is imported only when a schema is used.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from ..errors import AnswerNotJson, InputError

Format = Literal["json"] | dict[str, Any]


def check_format(format: object) -> None:
    """Raise ``InputError`` unless ``format`` is ``"json"`` or a usable JSON Schema object."""
    if format == "json":
        return
    if not isinstance(format, dict):
        raise InputError("format must be 'json' or a JSON Schema object.")
    from jsonschema import SchemaError, validators

    try:
        validators.validator_for(format).check_schema(format)
    except SchemaError as exc:
        raise InputError(f"format is not a valid JSON Schema: {exc.message}.") from None
    except RecursionError:
        raise InputError("format is not a valid JSON Schema: it is nested too deeply.") from None


def parse_answer(model: str, answer: str, format: Format, done_reason: str | None) -> Any:
    """The JSON value ``answer`` holds; ``AnswerNotJson`` (with the raw text) if it is none or off-schema."""
    cut = " (it was cut off: raise num_predict)" if done_reason == "length" else ""
    try:
        value = json.loads(answer)
    except ValueError as exc:
        raise AnswerNotJson(model, f"is not valid JSON{cut}: {exc}", answer) from None
    except RecursionError:
        raise AnswerNotJson(model, "is JSON nested too deeply to read", answer) from None
    if isinstance(format, dict):
        from jsonschema import validators

        validator = validators.validator_for(format)(format)
        try:
            errors = sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
        except RecursionError:
            raise AnswerNotJson(model, "is JSON nested too deeply to check", answer) from None
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path)
            at = f"at /{where}" if where else "at the top level"
            raise AnswerNotJson(model, f"does not match the schema{cut}: {at}, {first.message}", answer)
    return value
