"""``core/thinking.py``: thinking split from the answer, inline ``<think>`` blocks however cut."""

from __future__ import annotations

import pytest

from mcp_ollama.core.thinking import ThinkSplitter, split_thinking

from .fake_ollama import inline_think_tokens, tokenize


def split_stream(pieces: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    parts = [splitter.feed(piece) for piece in pieces]
    parts.append(splitter.flush())
    return "".join(t for t, _ in parts), "".join(a for _, a in parts)


def test_an_inline_think_block_is_split_from_the_answer_when_its_tags_arrive_in_pieces() -> None:
    pieces = [*inline_think_tokens("I should greet back."), *tokenize("Hello to you.")]
    thinking, answer = split_stream(pieces)
    assert thinking.strip() == "I should greet back."
    assert answer == "Hello to you."


@pytest.mark.parametrize(
    "text",
    [
        "<think>a plan</think>The answer.",
        "\n <think>\na plan\n</think>\n\nThe answer.",
        "\n <think>\na plan\n</think>The answer.",
        "<think>a plan</think><think>more</think>The answer.",
    ],
)
def test_the_split_is_the_same_however_the_stream_is_cut(text: str) -> None:
    whole = split_stream([text])
    assert whole[1] == "The answer."
    assert "plan" in whole[0] and "<" not in whole[0]
    assert split_stream(list(text)) == whole
    for cut in range(1, len(text)):
        assert split_stream([text[:cut], text[cut:]]) == whole, cut


def test_an_answer_that_mentions_the_tag_keeps_its_words() -> None:
    text = "Use <think> tags like <think>this</think> in prompts."
    assert split_stream(list(text)) == ("", text)


def test_text_that_only_starts_like_a_tag_is_answer() -> None:
    assert split_stream(["<th", "e end>"]) == ("", "<the end>")
    assert split_stream(["<"]) == ("", "<")


def test_an_unclosed_block_is_all_thinking() -> None:
    assert split_stream(["<think>still going", " on and </thi"]) == ("still going on and </thi", "")


def test_whitespace_alone_is_no_answer() -> None:
    assert split_stream(["\n", "  "]) == ("", "")


def test_a_lone_closing_tag_ends_thinking_opened_by_the_template() -> None:
    assert split_thinking("I reason here.\n</think>\n\nAnswer.") == ("I reason here.", "Answer.")
    assert split_thinking("No tags at all.") == ("", "No tags at all.")
    both = "<think>x</think>y"
    assert split_thinking(both) == ("", both)
