"""``core/structured.py``: the formats accepted, and JSON answers parsed or refused with the raw text."""

from __future__ import annotations

import pytest

from mcp_ollama.core.structured import check_format, parse_answer
from mcp_ollama.errors import AnswerNotJson, InputError

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_usable_formats_pass_and_others_are_refused() -> None:
    check_format("json")
    check_format(SCHEMA)
    for bad, expected in (("xml", "'json' or a JSON Schema"), ({"type": 12}, "not a valid JSON Schema")):
        with pytest.raises(InputError, match=expected):
            check_format(bad)


def test_a_json_answer_is_parsed() -> None:
    assert parse_answer("m", ' {"n": 3} ', "json", "stop") == {"n": 3}
    assert parse_answer("m", "[1, 2]", "json", "stop") == [1, 2]
    assert parse_answer("m", '{"n": 3}', SCHEMA, "stop") == {"n": 3}


def test_text_that_is_not_json_is_an_error_with_the_raw_text() -> None:
    with pytest.raises(AnswerNotJson) as caught:
        parse_answer("qwen3:8b", "Sure! {", "json", "stop")
    assert caught.value.raw == "Sure! {"
    assert "qwen3:8b was asked for JSON" in str(caught.value)
    assert "is not valid JSON: Expecting value" in str(caught.value)
    assert str(caught.value).endswith("The model wrote:\nSure! {")


def test_an_answer_cut_short_says_so() -> None:
    with pytest.raises(AnswerNotJson, match="cut off: raise num_predict"):
        parse_answer("m", '{"n": ', "json", "length")


def test_json_off_the_schema_names_where_and_why() -> None:
    with pytest.raises(AnswerNotJson, match="at /n, 'x' is not of type 'integer'"):
        parse_answer("m", '{"n": "x"}', SCHEMA, "stop")
    with pytest.raises(AnswerNotJson, match="at the top level, 'n' is a required property"):
        parse_answer("m", "{}", SCHEMA, "stop")


def test_json_nested_absurdly_deep_is_an_error_not_a_crash() -> None:
    with pytest.raises(AnswerNotJson, match="nested too deeply"):
        parse_answer("m", "[" * 100_000 + "]" * 100_000, "json", "stop")


def test_a_huge_raw_answer_is_shown_shortened() -> None:
    with pytest.raises(AnswerNotJson) as caught:
        parse_answer("m", "x" * 10_000, "json", "stop")
    assert caught.value.raw == "x" * 10_000
    assert len(str(caught.value)) < 4_500
