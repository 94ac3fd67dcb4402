"""core/transcripts.py: a stored session rendered for people and programs, safe for a terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mcp_ollama.core.transcripts import transcript_json, transcript_markdown
from mcp_ollama.store import SessionInfo, StoredMessage

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
HOSTILE = "title\x1b]0;pwned\x07 clear\x1b[2J csi\x9b31m bell\x07 del\x7f end"


def _session() -> tuple[SessionInfo, list[StoredMessage]]:
    info = SessionInfo(
        id="s1",
        title=HOSTILE,
        model="llama3:8b",
        created_at=NOW,
        updated_at=NOW,
        turn_count=1,
        message_count=2,
    )
    messages = [
        StoredMessage(role="user", content=HOSTILE, created_at=NOW),
        StoredMessage(role="assistant", content="fine\x9b2J", created_at=NOW),
    ]
    return info, messages


def _controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]


def test_the_markdown_transcript_holds_no_control_character_c0_or_c1() -> None:
    rendered = transcript_markdown(*_session())
    assert _controls(rendered) == []
    assert "clear csi31m bell del end" in rendered  # the words stay, the sequences go


def test_the_json_document_escapes_every_control_character_and_keeps_the_data() -> None:
    info, messages = _session()
    rendered = transcript_json(info, messages)
    assert _controls(rendered) == []
    assert "\\u009b" in rendered and "\\u001b" in rendered
    document = json.loads(rendered)
    assert document["title"] == HOSTILE and document["messages"][1]["content"] == "fine\x9b2J"
