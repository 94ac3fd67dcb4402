"""``core/budget.py``: token estimates, the answer reserve, history trimming (whole turns, oldest
first) and the calibration learnt from Ollama's own prompt counts."""

from __future__ import annotations

import pytest

from mcp_ollama.backend.models import ChatMessage, GenerationOptions
from mcp_ollama.core.budget import Calibration, answer_reserve, estimate_tokens, fit_history
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


# --- the calibration, and trimming with a scale, extra tokens and a named window ------------------


def test_calibration_follows_a_larger_ratio_at_once_and_a_smaller_one_gradually() -> None:
    calibration = Calibration()
    assert calibration.scale("dense:8b") == 1.0
    calibration.learn("dense:8b", 1000, 2000, 8192)
    assert calibration.scale("dense:8b") == 2.0
    calibration.learn("dense:8b", 1000, 1000, 8192)
    assert calibration.scale("dense:8b") == pytest.approx(1.75)
    calibration.learn("dense:8b", 1000, 3000, 8192)
    assert calibration.scale("dense:8b") == 3.0
    assert calibration.scale("llama3:8b") == 1.0


def test_calibration_ignores_counts_that_may_have_been_cut_or_are_missing() -> None:
    calibration = Calibration()
    calibration.learn("m", 1000, 7800, 8192)  # at 95 % of the window: Ollama may have cut it
    calibration.learn("m", 1000, None, 8192)
    calibration.learn("m", 1000, 0, 8192)  # a reused prompt cache
    calibration.learn("m", 0, 500, 8192)
    assert calibration.scale("m") == 1.0


def test_calibration_is_bounded() -> None:
    calibration = Calibration()
    calibration.learn("big", 10, 1000, 100_000)
    calibration.learn("small", 1000, 1, 100_000)
    assert (calibration.scale("big"), calibration.scale("small")) == (4.0, 0.25)


def long_questions(count: int, chars: int) -> list[ChatMessage]:
    history = []
    for n in range(count):
        history += [
            ChatMessage(role="user", content=f"q{n}" + "x" * chars),
            ChatMessage(role="assistant", content=f"a{n}"),
        ]
    return history


BE_BRIEF = ChatMessage(role="system", content="Be brief.")
NOW = ChatMessage(role="user", content="now")


def test_history_is_trimmed_a_whole_turn_at_a_time_oldest_first() -> None:
    history = long_questions(4, 400)  # about 105 tokens a turn
    fixed = estimate_tokens(BE_BRIEF.content) + estimate_tokens(NOW.content)
    kept = fit_history(BE_BRIEF, history, NOW, fixed + 250)
    assert kept == history[-4:]
    assert fit_history(BE_BRIEF, history, NOW, fixed + 1000) == history


def test_a_scale_trims_sooner_and_extra_tokens_count() -> None:
    history = long_questions(4, 400)
    budget = 600
    assert fit_history(BE_BRIEF, history, NOW, budget) == history
    assert fit_history(BE_BRIEF, history, NOW, budget, scale=2.0) == history[-4:]
    assert fit_history(BE_BRIEF, history, NOW, budget, extra=400) == history[-2:]


def test_a_message_that_does_not_fit_names_the_window() -> None:
    with pytest.raises(InputTooLarge, match="too long for llama3:8b's context window of 8,192 tokens"):
        fit_history(
            BE_BRIEF,
            [],
            ChatMessage(role="user", content="x" * 40_000),
            7168,
            window="llama3:8b's context window of 8,192 tokens",
        )


def test_the_answer_reserve_is_num_predict_or_a_quarter_of_the_window() -> None:
    assert answer_reserve(8192, None) == 1024
    assert answer_reserve(2048, None) == 512
    assert answer_reserve(8192, GenerationOptions(num_predict=300)) == 300
    assert answer_reserve(8192, GenerationOptions(num_predict=100_000)) == 4096
