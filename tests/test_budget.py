"""The pure parts of a chat turn: token estimates, the answer reserve, and history trimming."""

from __future__ import annotations

import pytest

from mcp_ollama.backend import ChatMessage, GenerationOptions
from mcp_ollama.core.budget import answer_reserve, estimate_tokens, fit_history
from mcp_ollama.errors import InputTooLarge

SYSTEM = ChatMessage(role="system", content="s" * 40)


def turns(n: int, size: int) -> list[ChatMessage]:
    history: list[ChatMessage] = []
    for i in range(n):
        history.append(ChatMessage(role="user", content=f"{i}" * size))
        history.append(ChatMessage(role="assistant", content=f"{i}" * size))
    return history


def test_history_that_fits_is_kept_whole() -> None:
    history = turns(3, 40)
    assert fit_history(SYSTEM, history, ChatMessage(role="user", content="q"), 1000) == history


def test_oldest_whole_turns_are_dropped_first() -> None:
    history = turns(4, 400)  # 104 tokens a message; system prompt and question: 19
    # 550 tokens would hold five messages (539), but the fifth from the end is an assistant
    # answer whose question is gone: whole turns only, so four.
    kept = fit_history(SYSTEM, history, ChatMessage(role="user", content="q"), 550)
    assert kept == history[-4:]
    assert kept[0].role == "user"


def test_a_turn_is_dropped_whole_even_when_its_answer_alone_would_fit() -> None:
    history = [
        ChatMessage(role="user", content="u" * 800),  # 204 tokens
        ChatMessage(role="assistant", content="a" * 40),  # 14 tokens
        ChatMessage(role="user", content="v" * 40),
        ChatMessage(role="assistant", content="b" * 40),
    ]
    kept = fit_history(SYSTEM, history, ChatMessage(role="user", content="q"), 100)
    assert kept == history[2:]


def test_a_message_too_big_for_the_context_is_refused() -> None:
    with pytest.raises(InputTooLarge, match="num_ctx"):
        fit_history(SYSTEM, [], ChatMessage(role="user", content="x" * 10_000), 1000)


def test_estimates_err_on_the_generous_side() -> None:
    assert estimate_tokens("") >= 1
    assert estimate_tokens("a" * 400) >= 100


@pytest.mark.parametrize(
    ("ctx", "options", "reserve"),
    [
        (4096, None, 1024),
        (2048, None, 512),
        (4096, GenerationOptions(num_predict=100), 100),
        (4096, GenerationOptions(num_predict=-1), 1024),
        (1024, GenerationOptions(num_predict=5000), 512),
    ],
)
def test_answer_reserve(ctx: int, options: GenerationOptions | None, reserve: int) -> None:
    assert answer_reserve(ctx, options) == reserve
