"""The domain pieces of issue 10 without MCP or HTTP: thinking split from answers, images checked,
JSON answers parsed, the token budget calibrated, each model's window, and model-name advice."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from pathlib import Path

import pytest

from mcp_ollama.backend import ChatMessage, GenerationOptions
from mcp_ollama.config import Settings
from mcp_ollama.core.budget import Calibration, answer_reserve, estimate_tokens, fit_history
from mcp_ollama.core.images import MAX_IMAGES, read_images, sniff
from mcp_ollama.core.structured import check_format, parse_answer
from mcp_ollama.core.thinking import ThinkSplitter, split_thinking
from mcp_ollama.errors import (
    AnswerNotJson,
    InputError,
    InputTooLarge,
    ModelCannot,
    ModelNotFound,
    closest_name,
)

from .fake_ollama import inline_think_tokens, tokenize

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 "


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- thinking -------------------------------------------------------------------------------


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


# --- images ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (b"GIF87a" + GIF[6:], "image/gif"),
        (WEBP, "image/webp"),
    ],
)
def test_images_are_recognised_by_their_first_bytes(data: bytes, mime: str) -> None:
    assert sniff(data) == mime
    (image,) = read_images([b64(data)], 1000)
    assert image.note.mime == mime
    assert image.note.size == len(data)
    assert image.note.sha256 == hashlib.sha256(data).hexdigest()
    assert image.base64 == b64(data)


@pytest.mark.parametrize(
    "data", [b"", b"RIFF\x00\x00\x00\x00WAVE", b"%PDF-1.7", b"\x89PNG", b"SECRET-CONTENT"]
)
def test_other_bytes_are_not_images(data: bytes) -> None:
    assert sniff(data) is None


def test_base64_with_line_breaks_and_a_data_uri_are_read(tmp_path: Path) -> None:
    encoded = b64(PNG)
    wrapped = encoded[:8] + "\n" + encoded[8:] + "\n"
    path = tmp_path / "p.png"
    path.write_bytes(PNG)
    images = read_images([wrapped, f"data:image/png;base64,{encoded}", str(path)], 1000)
    assert [i.base64 for i in images] == [encoded] * 3
    assert {i.note for i in images} == {images[0].note}


def test_a_data_uri_is_typed_by_its_bytes_not_its_label() -> None:
    (image,) = read_images([f"data:image/png;base64,{b64(GIF)}"], 1000)
    assert image.note.mime == "image/gif"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("", "images[0] is empty"),
        ("   ", "images[0] is empty"),
        ("pic.png", "relative paths are not accepted"),
        ("data:image/png,rawbytes", "without base64 data"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        (f"data:image/png;base64,{b64(b'SECRET-CONTENT')}", "is not a PNG, JPEG, GIF or WebP image"),
        (b64(b"SECRET-CONTENT"), "relative paths are not accepted"),
    ],
)
def test_unusable_items_are_refused_with_their_index(item: str, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        read_images([b64(PNG), item], 1000)
    text = str(caught.value).replace("images[1]", "images[0]")
    assert expected in text
    assert "SECRET" not in text


def test_every_path_that_is_not_an_image_gets_the_same_answer(tmp_path: Path) -> None:
    secret = tmp_path / "case"
    secret.write_bytes(b"SECRET-CONTENT")
    empty = tmp_path / "case-empty"
    empty.write_bytes(b"")
    directory = tmp_path / "case-dir"
    directory.mkdir()
    candidates = [secret, empty, directory, tmp_path / "case-missing"]
    if hasattr(os, "mkfifo"):  # a FIFO must not hang the server either
        fifo = tmp_path / "case-fifo"
        os.mkfifo(fifo)
        candidates.append(fifo)
    texts = set()
    for path in candidates:
        with pytest.raises(InputError) as caught:
            read_images([str(path)], 1000)
        text = str(caught.value)
        assert "SECRET" not in text and "CONTENT" not in text
        texts.add(text.replace(str(path), "<path>"))
    assert len(texts) == 1, texts


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_an_unreadable_image_file_gets_the_same_answer(tmp_path: Path) -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root reads anything")
    locked = tmp_path / "locked.png"
    locked.write_bytes(PNG)
    locked.chmod(0)
    missing = tmp_path / "lost.png"
    with pytest.raises(InputError) as unreadable:
        read_images([str(locked)], 1000)
    with pytest.raises(InputError) as absent:
        read_images([str(missing)], 1000)
    assert str(unreadable.value).replace(str(locked), "P") == str(absent.value).replace(str(missing), "P")


def test_images_over_the_limit_are_refused_in_every_form(tmp_path: Path) -> None:
    big = PNG + b"\x00" * 200
    path = tmp_path / "big.png"
    path.write_bytes(big)
    for item in (b64(big), f"data:image/png;base64,{b64(big)}", str(path)):
        with pytest.raises(InputTooLarge, match="100-byte limit"):
            read_images([item], 100)
    assert read_images([str(path)], len(big))[0].note.size == len(big)


def test_at_most_sixteen_images_go_with_one_message() -> None:
    assert len(read_images([b64(PNG)] * MAX_IMAGES, 1000)) == MAX_IMAGES
    with pytest.raises(InputError, match="at most 16"):
        read_images([b64(PNG)] * (MAX_IMAGES + 1), 1000)


# --- JSON answers ---------------------------------------------------------------------------

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


# --- the budget -----------------------------------------------------------------------------


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


def _turns(count: int, chars: int) -> list[ChatMessage]:
    history = []
    for n in range(count):
        history += [
            ChatMessage(role="user", content=f"q{n}" + "x" * chars),
            ChatMessage(role="assistant", content=f"a{n}"),
        ]
    return history


SYSTEM = ChatMessage(role="system", content="Be brief.")
USER = ChatMessage(role="user", content="now")


def test_history_is_trimmed_a_whole_turn_at_a_time_oldest_first() -> None:
    history = _turns(4, 400)  # about 105 tokens a turn
    fixed = estimate_tokens(SYSTEM.content) + estimate_tokens(USER.content)
    kept = fit_history(SYSTEM, history, USER, fixed + 250)
    assert kept == history[-4:]
    assert fit_history(SYSTEM, history, USER, fixed + 1000) == history


def test_a_scale_trims_sooner_and_extra_tokens_count() -> None:
    history = _turns(4, 400)
    budget = 600
    assert fit_history(SYSTEM, history, USER, budget) == history
    assert fit_history(SYSTEM, history, USER, budget, scale=2.0) == history[-4:]
    assert fit_history(SYSTEM, history, USER, budget, extra=400) == history[-2:]


def test_a_message_that_does_not_fit_names_the_window() -> None:
    with pytest.raises(InputTooLarge, match="too long for llama3:8b's context window of 8,192 tokens"):
        fit_history(
            SYSTEM,
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


def test_each_models_window_is_its_own_maximum_capped_unless_configured() -> None:
    settings = Settings()
    assert settings.context_window(8192) == 8192
    assert settings.context_window(40960) == 16384
    assert settings.context_window(None) == 4096
    assert Settings(max_context=65536).context_window(131072) == 65536
    assert Settings(num_ctx=2048).context_window(131072) == 2048


# --- model-name advice ----------------------------------------------------------------------


def test_the_closest_pulled_model_is_suggested() -> None:
    pulled = ["qwen3:8b", "llama3:8b", "llava:7b"]
    assert closest_name("llama3", pulled) == "llama3:8b"
    assert closest_name("lama3:8b", pulled) == "llama3:8b"
    assert closest_name("qwen", pulled) == "qwen3:8b"
    assert closest_name("mistral:7b", pulled) is None


def test_model_errors_name_the_pulled_models() -> None:
    text = str(ModelNotFound("llama3", "http://127.0.0.1:11434", ["llama3:8b"]))
    assert "Did you mean 'llama3:8b'? Pulled models: llama3:8b." in text
    assert "No model is pulled yet." in str(ModelNotFound("x", "http://h", []))
    many = str(ModelNotFound("zzz", "http://h", [f"m{n}:1b" for n in range(25)]))
    assert "and 5 more" in many
    cannot = str(ModelCannot("llama3:8b", "think", "thinking", [], "qwen3"))
    assert "lacks Ollama's 'thinking' capability" in cannot and "ollama pull qwen3" in cannot
