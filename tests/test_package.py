"""The package as users install it: the built wheel and sdist, installed into a fresh environment.

The wheel goes into a new virtual environment with pip (no access to this checkout), and the
installed ``mcp-server-ollama`` is driven there as a host drives it: ``initialize``, a ``chat``,
then ``doctor``, against the fake Ollama. Marked ``dist``: ``.ci/run`` builds the package and runs
these with ``MCP_SERVER_OLLAMA_DIST``; elsewhere they skip (see ``tests/built.py``). The version's one
home and the release workflow are checked in every run.
"""

from __future__ import annotations

import email.parser
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

import mcp_ollama

from .built import PACKAGE, ROOT, USER_HOME, require_dist, require_uv, wheel_in
from .fake_ollama import FakeOllama

SCRIPTS = {"mcp-server-ollama", "mcp-ollama"}
ENTRY = "mcp_ollama.cli:main"
README_TEST_COMMAND = (
    'python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]" && .venv/bin/python -m pytest'
)


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------- in every run


def test_the_version_is_written_once_and_read_by_the_build() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert "version" not in project and project["dynamic"] == ["version"]
    assert pyproject()["tool"]["hatch"]["version"] == {"path": "src/mcp_ollama/__init__.py"}  # type: ignore[index]
    assert re.fullmatch(r"\d+\.\d+\.\d+", mcp_ollama.__version__)


def test_both_console_scripts_run_the_same_entry() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    assert project["name"] == PACKAGE
    assert project["scripts"] == {name: ENTRY for name in SCRIPTS}


def test_version_flag_names_the_package_and_its_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_ollama", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{PACKAGE} {mcp_ollama.__version__}"


def test_changelog_keeps_an_unreleased_section_first() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    assert headings and headings[0] == "Unreleased", "Keep a Changelog: changes gather under Unreleased"
    assert "Keep a Changelog" in text


def test_release_workflow_tests_builds_checks_and_publishes_without_a_token() -> None:
    """Not run here (it runs on the forge); what it must do, held against .ci/run's pins."""
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert README_TEST_COMMAND in text and README_TEST_COMMAND in ci
    for tool in ("build", "twine"):
        [pin] = set(re.findall(rf'"{tool}==([\d.]+)"', ci))
        assert f'"{tool}=={pin}"' in text, f"the release builds with the {tool} CI uses"
    assert "twine check --strict" in text
    assert text.count("id-token: write") == 1, "only the publishing job may mint an OIDC token"
    assert "pypa/gh-action-pypi-publish@release/v1" in text
    assert "password" not in text and "secrets." not in text, "trusted publishing needs no stored token"
    assert 'TAG" != "v$version"' in text, "a tag that does not match __version__ is refused"


# ---------------------------------------------------------------------------- with the built package


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode("utf-8"))


@pytest.mark.dist
def test_wheel_carries_the_published_name_version_and_both_scripts() -> None:
    wheel = wheel_in(require_dist())
    assert wheel is not None
    meta = metadata(wheel)
    assert meta["Name"] == PACKAGE
    assert meta["Version"] == mcp_ollama.__version__
    assert "<!-- mcp-name: io.github." in meta.get_payload(), "the README, registry marker included"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode("utf-8")
    for script in SCRIPTS:
        assert f"{script} = {ENTRY}" in scripts
    assert "mcp_ollama/py.typed" in names
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


@pytest.mark.dist
def test_sdist_holds_the_sources_tests_and_docs_and_nothing_local() -> None:
    dist = require_dist()
    sdist = dist / f"mcp_server_ollama-{mcp_ollama.__version__}.tar.gz"
    assert sdist.is_file(), f"no sdist beside the wheel in {dist}"
    top = f"mcp_server_ollama-{mcp_ollama.__version__}/"
    with tarfile.open(sdist) as archive:
        names = {n.removeprefix(top) for n in archive.getnames()}
    needed = {
        "PKG-INFO",
        "pyproject.toml",
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "docs/architecture.md",
        "src/mcp_ollama/__init__.py",
        "tests/fake_ollama/__main__.py",
    }
    assert needed <= names, f"missing from the sdist: {needed - names}"
    local = (".venv/", ".ci/", "bench/", "dist/", ".git/", "node_modules")
    assert not [n for n in names if n.startswith(local) or "__pycache__" in n]


@pytest.mark.dist
@pytest.mark.anyio
async def test_installed_wheel_serves_a_chat_and_passes_doctor(fake: FakeOllama, tmp_path: Path) -> None:
    """The wheel installed into a new virtual environment; its own scripts serve and check.

    uv installs it there (seconds, with its cache; pip's own install of the package from source
    is the README's first command, run by tests/test_readme_commands.py).
    """
    wheel = wheel_in(require_dist())
    assert wheel is not None
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bindir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    uv = str(require_uv() / "uv")
    install = await anyio.run_process(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--refresh-package",
            PACKAGE,
            "--python",
            str(bindir / "python"),
            str(wheel),
        ],
        check=False,
        cwd=tmp_path,  # not this checkout: nothing of it on the path
        env={**os.environ, "UV_CACHE_DIR": str(USER_HOME / ".cache" / "uv")},
    )
    assert install.returncode == 0, install.stderr.decode()
    env = {
        "OLLAMA_HOST": fake.url,
        "MCP_OLLAMA_DB": str(tmp_path / "sessions.sqlite3"),
        "MCP_OLLAMA_PRELOAD": "off",
    }
    server = bindir / "mcp-server-ollama"
    params = StdioServerParameters(command=str(server), args=[], env=env, cwd=str(tmp_path))
    async with Client(params, mode="legacy") as client:
        info = client.server_info  # from the initialize handshake
        assert client.protocol_version == "2025-11-25"
        answer = await client.call_tool("chat", {"message": "Hello from the wheel"})
    assert info.version == mcp_ollama.__version__
    assert not answer.is_error, answer
    assert answer.structured_content is not None
    assert answer.structured_content["answer"].startswith("You said: Hello from the wheel")
    assert answer.structured_content["saved"] is True

    for script in sorted(SCRIPTS):
        done = await anyio.run_process(
            [str(bindir / script), "doctor"], check=False, cwd=tmp_path, env={**os.environ, **env}
        )
        report = done.stdout.decode()
        assert done.returncode == 0, report + done.stderr.decode()
        assert "[ok] ollama" in report and str(tmp_path / "sessions.sqlite3") in report
        version = await anyio.run_process([str(bindir / script), "--version"], check=False, cwd=tmp_path)
        assert version.stdout.decode().strip() == f"{PACKAGE} {mcp_ollama.__version__}"
