"""Thinking kept apart from the answer: ``<think>…</think>`` blocks a model writes into its text.

Thinking models stream their reasoning as ``message.thinking`` when asked to think. Some models
(and some model templates) write it inline instead, as a ``<think>…</think>`` block before the
answer. ``ThinkSplitter`` separates such a block from the answer as the pieces stream in, even
when a tag arrives split across pieces; ``split_thinking`` finishes the job on the whole text.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


class ThinkSplitter:
    """Routes streamed text to thinking or answer, dropping the tags themselves.

    A block is recognised only where the answer has not begun (nothing but whitespace before
    it): a model that mentions ``<think>`` in its answer keeps its words.
    """

    def __init__(self) -> None:
        self._inside = False
        self._pending = ""
        self._answered = False
        """Whether anything but whitespace has gone to the answer."""
        self._thought = False
        """Whether a block has closed (the whitespace after it is dropped)."""

    def feed(self, text: str) -> tuple[str, str]:
        """The (thinking, answer) parts of ``text``, holding back what may be the start of a tag."""
        buffer = self._pending + text
        self._pending = ""
        thinking: list[str] = []
        answer: list[str] = []
        while buffer:
            tag = CLOSE if self._inside else OPEN
            if not self._inside and self._answered:
                answer.append(buffer)
                break
            if not self._inside:
                stripped = buffer.lstrip()
                if not stripped:  # whitespace only: it may come before a tag; hold it
                    self._pending = buffer
                    break
                if not (tag.startswith(stripped) or stripped.startswith(tag)):
                    self._answered = True
                    # After a block, the blank lines that close it are not the answer's.
                    answer.append(stripped if self._thought else buffer)
                    break
                if len(stripped) < len(tag):  # the start of a tag: wait for the rest
                    self._pending = buffer
                    break
                self._inside = True
                buffer = stripped[len(tag) :]
                continue
            end = buffer.find(tag)
            if end >= 0:
                thinking.append(buffer[:end])
                self._inside = False
                self._thought = True
                buffer = buffer[end + len(tag) :].lstrip()
                continue
            keep = _partial_suffix(buffer, tag)
            thinking.append(buffer[: len(buffer) - keep])
            self._pending = buffer[len(buffer) - keep :]
            break
        return "".join(thinking), "".join(answer)

    def flush(self) -> tuple[str, str]:
        """What is still held back, at the end of the stream."""
        pending, self._pending = self._pending, ""
        if self._inside:
            return pending, ""
        if not self._answered and not pending.strip():
            return "", ""  # whitespace before an answer that never came
        return "", pending


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is the beginning of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


def split_thinking(answer: str) -> tuple[str, str]:
    """(thinking, answer) of a whole answer whose template opened the block in the prompt.

    Some templates (DeepSeek-R1's) end the prompt with ``<think>``, so the model writes only the
    closing tag: everything before a lone ``</think>`` is thinking.
    """
    if CLOSE in answer and OPEN not in answer:
        thought, _, rest = answer.partition(CLOSE)
        return thought.strip(), rest.lstrip()
    return "", answer
