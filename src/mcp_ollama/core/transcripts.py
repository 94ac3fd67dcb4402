"""A stored session rendered for reading: the JSON document and the Markdown transcript."""

from __future__ import annotations

import json
import re
from datetime import datetime

from ..store import SessionInfo, StoredMessage
from .text import clean_text, count

# JSON escapes C0 controls itself; DEL and the C1 controls (U+009B is a one-character CSI to
# a terminal) pass through raw with ensure_ascii=False, so they are escaped here.
_RAW_IN_JSON = re.compile(r"[\x7f-\x9f]")


def _iso(value: datetime) -> str:
    return value.isoformat()


def transcript_json(info: SessionInfo, messages: list[StoredMessage]) -> str:
    """The session as a JSON document: every stored character kept, none raw that a terminal obeys."""
    text = json.dumps(
        {
            "session_id": info.id,
            "title": info.title,
            "model": info.model,
            "created_at": _iso(info.created_at),
            "updated_at": _iso(info.updated_at),
            "turn_count": info.turn_count,
            "messages": [_message_json(m) for m in messages],
        },
        ensure_ascii=False,
        indent=2,
    )
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _message_json(m: StoredMessage) -> dict[str, object]:
    document: dict[str, object] = {"role": m.role, "content": m.content, "created_at": _iso(m.created_at)}
    if m.thinking:
        document["thinking"] = m.thinking
    if m.images:
        document["images"] = [{"type": i.mime, "size": i.size, "sha256": i.sha256} for i in m.images]
    return document


def transcript_markdown(info: SessionInfo, messages: list[StoredMessage]) -> str:
    """The session as Markdown: a heading per message, thinking folded, images as notes; no
    terminal control sequences (the stored text is the model's, and may hold any)."""
    lines = [
        f"# {info.title or info.id}",
        "",
        f"Session `{info.id}` with `{info.model}`, {count(info.turn_count, 'turn')}, "
        f"started {_iso(info.created_at)}, last active {_iso(info.updated_at)}.",
    ]
    for m in messages:
        who = "User" if m.role == "user" else "Assistant"
        lines += ["", f"## {who} ({_iso(m.created_at)})", ""]
        if m.thinking:
            lines += ["<details>", "<summary>Thinking</summary>", "", m.thinking, "", "</details>", ""]
        lines += [f"[image: {image.describe()}]" for image in m.images]
        lines.append(m.content)
    return clean_text("\n".join(lines) + "\n")
