"""The README and docs/ hold together: every link lands, every setting is documented, the README
stays the short page users start from.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcp_ollama.config import SETTINGS_SPEC

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 265  # the performance table issue 21 asks for
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```$", "", page.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def local_links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```$", "", page.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    return [link for link in LINK.findall(text) if not re.match(r"^[a-z]+:", link)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_local_link_lands(page: Path) -> None:
    broken = []
    for link in local_links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_every_setting_has_a_row_in_the_configuration_table() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| ")}
    missing = [spec.env for spec in SETTINGS_SPEC if f"`{spec.env}`" not in rows]
    assert not missing, f"document these settings in docs/configuration.md: {missing}"
    for spec in SETTINGS_SPEC:
        flag = rows[f"`{spec.env}`"].split("|")[1].strip()
        assert flag == (f"`{spec.flag}`" if spec.flag else "— (environment only)"), spec.env
    documented = {cell.strip("`") for cell in rows if re.fullmatch(r"`[A-Z][A-Z_]+`", cell)}
    assert documented <= {spec.env for spec in SETTINGS_SPEC}, "rows for settings that do not exist"


def test_the_readme_stays_short_and_starts_where_users_start() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings[:3] == ["Install", "Claude Desktop", "Other hosts"], headings
    assert "![" in text.split("## Install")[0], "a picture before the set-up"
    assert re.search(r"^## Troubleshooting$", text, re.MULTILINE)


def test_the_troubleshooting_list_holds_ten_problems_each_with_its_fix() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    items = re.findall(r"^\d+\. \*\*(.+?)\*\*", section, re.MULTILINE)
    assert len(items) == 10, items


def test_nothing_tells_anyone_to_install_the_other_projects_package() -> None:
    """``mcp-ollama`` on the package index is another project: by name, it is mcp-server-ollama."""
    wrong = re.compile(r"(?:pip|pipx|uv pip|uv tool) install ['\"]?mcp-ollama\b|uvx (?:--from )?mcp-ollama\b")
    warning = "**`uvx mcp-ollama` runs a different server.**"
    files = [*PAGES, *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "examples").iterdir())]
    found = []
    for path in files:
        text = path.read_text(encoding="utf-8").replace(warning, "")
        found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in wrong.finditer(text)]
    assert not found, found
