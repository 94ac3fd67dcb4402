"""Images (issue 17): read from base64, ``data:`` URLs and, only where the caller owns the disk, files.

``core/images.py`` on its own first: images recognised by their bytes, refused with their index
(never their content) when unusable; every refused path gets one sentence, whatever the reason;
caps per call and per principal in flight. Then the real server: over stdio (the SDK's in-memory
client) a path inside ``--image-dirs`` is read and every other gets that sentence, and a model
that cannot see is refused before any path is looked at; over HTTP (``serve --http`` in a
subprocess) no path is read for anyone, the caps hold, and the server keeps no image bytes once
a call is answered (its RSS after twenty calls of 48 MiB of images).
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import TextResourceContents

from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend.pool import OllamaPool
from mcp_ollama.config import SETTINGS_SPEC, Settings, SettingsError, load_settings
from mcp_ollama.core.chat import ChatService
from mcp_ollama.core.images import (
    MAX_IMAGES,
    ImageBatch,
    ImageRules,
    InFlight,
    call_cap_refused,
    in_flight_refused,
    path_refused,
    read_images,
    sniff,
)
from mcp_ollama.core.jobs import Jobs
from mcp_ollama.core.planning import plan_turn
from mcp_ollama.errors import InputError, InputTooLarge
from mcp_ollama.store import LOCAL, ChatStore
from mcp_ollama.transports.auth import add_token

from . import fake_ollama
from .conftest import client_for, connect, eventually, free_port
from .fake_ollama import GEMMA3, LLAMA3, LLAVA, QWEN3, Behavior, FakeOllama
from .test_models import chats, structured, text_of

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01"
PNG_B64 = base64.b64encode(PNG).decode()
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 "
MIB = 1024 * 1024
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rules(
    dirs: Sequence[Path | str] = (), *, each: int = 1000, call: int = 16_000, in_flight: int = 64_000
) -> ImageRules:
    return ImageRules(each, call, in_flight, tuple(str(d) for d in dirs))


# --- core/images.py: what an image is ----------------------------------------------------------


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
    batch = read_images([b64(data)], rules())
    (note,) = batch.notes
    assert (note.mime, note.size, note.sha256) == (mime, len(data), hashlib.sha256(data).hexdigest())
    assert batch.take() == [b64(data)]


@pytest.mark.parametrize(
    "data", [b"", b"RIFF\x00\x00\x00\x00WAVE", b"%PDF-1.7", b"\x89PNG", b"SECRET-CONTENT"]
)
def test_other_bytes_are_not_images(data: bytes) -> None:
    assert sniff(data) is None


def test_base64_with_line_breaks_a_data_url_and_an_allowed_path_are_read(tmp_path: Path) -> None:
    encoded = b64(PNG)
    wrapped = encoded[:8] + "\n" + encoded[8:] + "\n"
    path = tmp_path / "p.png"
    path.write_bytes(PNG)
    batch = read_images([wrapped, f"data:image/png;base64,{encoded}", str(path)], rules([tmp_path]))
    assert len(set(batch.notes)) == 1 and len(batch) == 3
    assert batch.take() == [encoded] * 3


def test_a_data_url_is_typed_by_its_bytes_not_its_label() -> None:
    (note,) = read_images([f"data:image/png;base64,{b64(GIF)}"], rules()).notes
    assert note.mime == "image/gif"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("", "images[0] is empty"),
        ("   ", "images[0] is empty"),
        ("data:image/png,rawbytes", "without base64 data"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        (f"data:image/png;base64,{b64(b'SECRET-CONTENT')}", "is not a PNG, JPEG, GIF or WebP image"),
        (b64(b"SECRET-CONTENT"), "is base64, but not of a PNG, JPEG, GIF or WebP image"),
    ],
)
def test_unusable_inline_images_are_refused_saying_what_is_wrong(item: str, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        read_images([b64(PNG), item], rules())
    text = str(caught.value).replace("images[1]", "images[0]")
    assert expected in text
    assert "SECRET" not in text


def test_inline_images_over_the_limit_are_refused_saying_so() -> None:
    big = PNG + b"\x00" * 200
    for item in (b64(big), f"data:image/png;base64,{b64(big)}"):
        with pytest.raises(InputTooLarge, match="100-byte limit for an image"):
            read_images([item], rules(each=100))


def test_at_most_sixteen_images_go_with_one_message() -> None:
    assert len(read_images([b64(PNG)] * MAX_IMAGES, rules())) == MAX_IMAGES
    with pytest.raises(InputError, match="at most 16"):
        read_images([b64(PNG)] * (MAX_IMAGES + 1), rules())


# --- core/images.py: paths ----------------------------------------------------------------------


def _path_zoo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An allowed directory, and paths that must all be refused with one sentence (by name)."""
    allowed = tmp_path / "allowed"
    outside = tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "pic.png").write_bytes(PNG)
    (outside / "pic.png").write_bytes(PNG)
    (allowed / "notes.txt").write_bytes(b"SECRET-CONTENT")
    (allowed / "empty.png").write_bytes(b"")
    (allowed / "big.png").write_bytes(PNG + b"\x00" * 2000)
    (allowed / "dir.png").mkdir()
    (allowed / "out.png").symlink_to(outside / "pic.png")
    (allowed / "outdir").symlink_to(outside)
    (allowed / "loop.png").symlink_to(allowed / "loop.png")
    locked = allowed / "locked.png"
    locked.write_bytes(PNG)
    locked.chmod(0)
    paths = {
        "outside": str(outside / "pic.png"),
        "dotdot": f"{allowed}/../outside/pic.png",
        "symlink out": str(allowed / "out.png"),
        "through a symlinked dir": str(allowed / "outdir" / "pic.png"),
        "via /proc": f"/proc/self/root{allowed}/pic.png",
        "missing": str(allowed / "missing.png"),
        "not an image": str(allowed / "notes.txt"),
        "empty": str(allowed / "empty.png"),
        "too large": str(allowed / "big.png"),
        "a directory": str(allowed / "dir.png"),
        "relative": "pic.png",
        "a NUL": f"{allowed}/pic.png\x00.txt",
        "a symlink loop": str(allowed / "loop.png"),
        "home-relative": "~/pic.png",
        "a device": "/dev/zero",
        "kernel": "/proc/self/environ",
    }
    if not ROOT:  # root reads anything
        paths["unreadable"] = str(locked)
    if hasattr(os, "mkfifo"):  # a FIFO must not hang the server either
        os.mkfifo(allowed / "fifo.png")
        paths["a FIFO"] = str(allowed / "fifo.png")
    return allowed, paths


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_every_refused_path_gets_the_same_sentence_whatever_the_reason(tmp_path: Path) -> None:
    allowed, paths = _path_zoo(tmp_path)
    ok = read_images([str(allowed / "pic.png")], rules([allowed]))
    assert ok.notes[0].size == len(PNG)
    for why, path in paths.items():
        with pytest.raises(InputError) as caught:
            read_images([path], rules([allowed]))
        assert str(caught.value) == path_refused(0), why
        assert "SECRET" not in str(caught.value)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_system_directories_are_never_read_whatever_the_set_says(tmp_path: Path) -> None:
    picture = tmp_path / "pic.png"
    picture.write_bytes(PNG)
    for dirs in (["/"], ["/proc", "/sys", "/dev"]):
        for path in (f"/proc/self/root{picture}", "/proc/self/fd/0", "/dev/stdin", "/sys/kernel/notes"):
            with pytest.raises(InputError) as caught:
                read_images([path], rules(dirs))
            assert str(caught.value) == path_refused(0)
    assert read_images([str(picture)], rules(["/"])).notes[0].size == len(PNG)


def test_no_path_is_read_where_no_directory_is_allowed(tmp_path: Path) -> None:
    picture = tmp_path / "pic.png"
    picture.write_bytes(PNG)
    with pytest.raises(InputError) as caught:
        read_images([b64(PNG), str(picture)], rules())
    assert str(caught.value) == path_refused(1)


def test_files_are_read_over_stdio_by_the_local_user_only(tmp_path: Path) -> None:
    settings = Settings(image_dirs=(str(tmp_path),))
    assert ImageRules.for_call(settings, LOCAL).dirs == (str(tmp_path),)
    assert ImageRules.for_call(settings, "alice").dirs == ()
    assert ImageRules.for_call(dataclasses.replace(settings, remote=True), LOCAL).dirs == ()


# --- core/images.py: caps and what a batch keeps ------------------------------------------------


def test_the_images_of_one_call_are_capped_together() -> None:
    image = PNG + b"\x00" * 400
    in_flight = InFlight()
    read_images([b64(image)] * 2, rules(call=1000), in_flight=in_flight).release()
    with pytest.raises(InputTooLarge) as caught:
        read_images([b64(image)] * 3, rules(call=1000), in_flight=in_flight)
    assert str(caught.value) == call_cap_refused(1000)
    assert in_flight.held(LOCAL) == 0


def test_the_images_in_flight_are_capped_per_principal() -> None:
    image = PNG + b"\x00" * 400
    in_flight = InFlight()
    limits = rules(call=1000, in_flight=1000)
    first = read_images([b64(image)] * 2, limits, in_flight=in_flight, principal="alice")
    assert in_flight.held("alice") == 2 * len(image)
    with pytest.raises(InputTooLarge) as caught:
        read_images([b64(image)], limits, in_flight=in_flight, principal="alice")
    assert str(caught.value) == in_flight_refused(1000)
    other = read_images([b64(image)], limits, in_flight=in_flight, principal="bob")
    first.release()
    first.release()  # once only
    assert in_flight.held("alice") == 0 and in_flight.held("bob") == len(image)
    read_images([b64(image)], limits, in_flight=in_flight, principal="alice").release()
    del other
    gc.collect()
    assert in_flight.held("bob") == 0, "a batch dropped unreleased releases itself"


def test_a_batch_gives_its_data_once_and_keeps_only_notes() -> None:
    batch = read_images([b64(PNG), b64(GIF)], rules())
    assert batch.take() == [b64(PNG), b64(GIF)]
    with pytest.raises(RuntimeError):
        batch.take()
    assert [n.mime for n in batch.notes] == ["image/png", "image/gif"]
    assert b64(PNG) not in repr(batch)
    assert ImageBatch().take() == []


# --- what a job keeps -------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("fails", [False, True])
async def test_a_finished_job_keeps_only_the_notes_of_its_images(
    settings: Settings, fake: FakeOllama, fails: bool
) -> None:
    fake.models.append(LLAVA)
    if fails:  # a failed job keeps its error: no frame of the turn may come with it
        fake.enqueue(Behavior(status=500))
    image = b64(PNG + os.urandom(5000))
    before = sys.getrefcount(image)
    store = ChatStore.open(":memory:")
    async with OllamaClient(settings.ollama_url) as client:
        service = ChatService(settings, OllamaPool([client]), store)
        async with Jobs(service, store) as jobs:
            batch = read_images([image], rules(each=10_000))
            assert sys.getrefcount(image) > before, "the batch holds the caller's own text"
            job = jobs.start(dataclasses.replace(plan_turn(settings, "look", model="llava:7b"), images=batch))
            del batch
            assert await job.wait(30)
            assert (job.error is not None) is fails
            assert sys.getrefcount(image) == before, "nothing of the turn keeps the image"
            assert [note.size for note in job.plan.images.notes] == [len(PNG) + 5000]
            with pytest.raises(RuntimeError):
                job.plan.images.take()
    store.close()


# --- settings -------------------------------------------------------------------------------


def test_image_settings_are_read_from_flags_and_the_environment(tmp_path: Path) -> None:
    home = os.path.expanduser("~")
    default = load_settings({}, environ={})
    assert default.image_dirs == (home,)
    assert (default.max_call_image_bytes, default.max_inflight_image_bytes) == (32 * MIB, 64 * MIB)
    assert default.remote is False
    joined = os.pathsep.join([str(tmp_path / "a"), "~/pics", "", str(tmp_path / "a")])
    read = load_settings(
        {}, environ={"MCP_OLLAMA_IMAGE_DIRS": joined, "MCP_OLLAMA_MAX_CALL_IMAGE_BYTES": "7"}
    )
    assert read.image_dirs == (str(tmp_path / "a"), os.path.join(home, "pics"))
    assert read.max_call_image_bytes == 7
    assert load_settings({"image_dirs": ""}, environ={}).image_dirs == ()
    assert load_settings({"max_inflight_image_bytes": "9"}, environ={}).max_inflight_image_bytes == 9
    names = {spec.name: spec for spec in SETTINGS_SPEC}
    for name in ("max_call_image_bytes", "max_inflight_image_bytes"):
        with pytest.raises(SettingsError, match=names[name].env):
            load_settings({name: "0"}, environ={})


# --- over stdio (the SDK's in-memory client) -------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("form", ["base64", "data-url", "path"])
async def test_an_image_reaches_a_vision_model_and_only_its_note_is_stored(
    settings: Settings, fake: FakeOllama, era: str, form: str, tmp_path: Path
) -> None:
    fake.models.append(LLAVA)
    picture = tmp_path / "pic.png"
    picture.write_bytes(PNG)
    image = {"base64": PNG_B64, "data-url": f"data:image/png;base64,{PNG_B64}", "path": str(picture)}[form]
    async with connect(dataclasses.replace(settings, image_dirs=(str(tmp_path),)), era) as client:
        result = await client.call_tool(
            "chat", {"message": "what is this?", "model": "llava:7b", "images": [image]}
        )
        sid = structured(result)["session_id"]
        structured(
            await client.call_tool("chat", {"message": "more?", "model": "llava:7b", "session_id": sid})
        )
        read = await client.read_resource(f"chat://sessions/{sid}")
    as_json, as_md = read.contents
    assert isinstance(as_json, TextResourceContents) and isinstance(as_md, TextResourceContents)
    doc, markdown = json.loads(as_json.text), as_md.text
    first, second = chats(fake)
    assert first["messages"][-1] == {"role": "user", "content": "what is this?", "images": [PNG_B64]}
    assert structured(result)["answer"].endswith("I see 1 image.")
    # The next turn's history carries no image.
    assert second["messages"][1:] == [
        {"role": "user", "content": "what is this?"},
        {"role": "assistant", "content": structured(result)["answer"]},
        {"role": "user", "content": "more?"},
    ]
    digest = hashlib.sha256(PNG).hexdigest()
    assert f"[image: image/png, {len(PNG)} bytes, sha256 {digest[:12]}" in markdown
    assert doc["messages"][0]["images"] == [{"type": "image/png", "size": len(PNG), "sha256": digest}]
    assert PNG_B64 not in markdown and PNG_B64 not in json.dumps(doc)


@pytest.mark.anyio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
async def test_over_stdio_a_path_outside_the_image_dirs_gets_the_one_sentence(
    settings: Settings, fake: FakeOllama, tmp_path: Path
) -> None:
    fake.models.append(LLAVA)
    allowed, paths = _path_zoo(tmp_path)
    (allowed / "inside.png").symlink_to(allowed / "pic.png")  # a symlink that stays in is fine
    args = {"message": "look", "model": "llava:7b"}
    async with connect(
        dataclasses.replace(settings, image_dirs=(str(allowed),), max_image_bytes=1000), "modern"
    ) as client:
        for why, path in paths.items():
            result = await client.call_tool("chat", {**args, "images": [path]})
            assert result.is_error is True, why
            assert text_of(result) == path_refused(0), why
        assert chats(fake) == []
        for path in (allowed / "pic.png", allowed / "inside.png"):
            answer = structured(await client.call_tool("chat", {**args, "images": [str(path)]}))
            assert answer["answer"].endswith("I see 1 image.")
    assert [body["messages"][-1]["images"] for body in chats(fake)] == [[PNG_B64], [PNG_B64]]


@pytest.mark.anyio
async def test_a_model_that_cannot_see_is_refused_before_any_path_is_looked_at(
    settings: Settings, fake: FakeOllama, era: str, tmp_path: Path
) -> None:
    fake.models[:] = [LLAMA3, QWEN3, LLAVA, GEMMA3]
    picture = tmp_path / "pic.png"
    picture.write_bytes(PNG)
    candidates = [str(picture), str(tmp_path / "missing.png"), "/etc/hostname", "pic.png"]
    async with connect(dataclasses.replace(settings, image_dirs=(str(tmp_path),)), era) as client:
        blind = {
            text_of(await client.call_tool("chat", {"message": "look", "images": [p]})) for p in candidates
        }
        empty = {text_of(await client.call_tool("chat", {"message": " ", "images": [p]})) for p in candidates}
    assert len(blind) == 1 and len(empty) == 1, (blind, empty)
    (text,) = blind
    assert "llama3:8b cannot see images" in text and "llava:7b" in text and "gemma3:4b" in text
    assert "empty" in empty.pop()
    assert chats(fake) == []


@pytest.mark.anyio
async def test_over_stdio_the_caps_hold_with_their_sentences(settings: Settings, fake: FakeOllama) -> None:
    fake.models.append(LLAVA)
    image = b64(PNG + b"\x00" * 400)
    capped = dataclasses.replace(settings, max_call_image_bytes=1000, max_inflight_image_bytes=1500)
    args = {"message": "look", "model": "llava:7b"}
    fake.enqueue(Behavior(hang=True))
    async with connect(capped, "modern") as client:
        over = await client.call_tool("chat", {**args, "images": [image] * 3})
        assert over.is_error is True and text_of(over) == call_cap_refused(1000)
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "chat", {**args, "images": [image] * 2})
            assert await eventually(lambda: fake.active_streams == 1, 30)
            busy = await client.call_tool("chat", {**args, "images": [image] * 2})
            assert busy.is_error is True and text_of(busy) == in_flight_refused(1500)
            tg.cancel_scope.cancel()
        assert await anyio.to_thread.run_sync(fake.wait_for_hangup, 30.0)

        async def accepted() -> bool:
            result = await client.call_tool("chat", {**args, "images": [image] * 2})
            return result.is_error is not True

        for _ in range(300):  # the cancelled turn lets go of its images as it ends
            if await accepted():
                break
            await anyio.sleep(0.1)
        else:
            raise AssertionError("the images of a cancelled call stay counted")


# --- over HTTP: serve --http in a subprocess ------------------------------------------------

IMAGE_MIB = 3
"""The memory test's images: sixteen of 3 MiB in every call (``rss_server``)."""
SMALL_IMAGE = 192 * 1024
"""The caps test's images (``http_server``): the same limits, scaled down 16 times."""
CALL_CAP = 16 * SMALL_IMAGE
"""Sixteen small images fit one call exactly."""
IN_FLIGHT_CAP = 4 * MIB
"""Sixteen small images in flight leave no room for six more."""
READY_LIMIT = 60.0


@dataclass
class HttpServer:
    url: str
    tokens: dict[str, str]
    process: subprocess.Popen[bytes]
    files: Path

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")


OPERATOR_TOKEN = "operator-token-for-image-tests"
HAS_OPERATOR_TOKEN = any(spec.env == "MCP_OLLAMA_HTTP_TOKEN" for spec in SETTINGS_SPEC)


@pytest.fixture(scope="module")
def http_server(_fake_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One HTTP server for the module: tokens for alice and bob (and the operator's, as ``local``),
    the image caps scaled down (``CALL_CAP``, ``IN_FLIGHT_CAP``), and its image dirs set to where
    the tests' files are: over HTTP they must be refused all the same."""
    caps = ["--max-call-image-bytes", str(CALL_CAP), "--max-inflight-image-bytes", str(IN_FLIGHT_CAP)]
    with _serve(_fake_server, tmp_path_factory, caps) as server:
        yield server


@pytest.fixture(scope="module")
def rss_server(_fake_server: FakeOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """A server whose calls may carry sixteen images of 3 MiB, for the memory test."""
    with _serve(
        _fake_server, tmp_path_factory, ["--max-call-image-bytes", str(16 * IMAGE_MIB * MIB)]
    ) as server:
        yield server


@contextmanager
def _serve(
    fake: FakeOllama, tmp_path_factory: pytest.TempPathFactory, caps: list[str]
) -> Iterator[HttpServer]:
    root = tmp_path_factory.mktemp("http-images")
    files = root / "files"
    files.mkdir()
    tokens_file = root / "tokens"
    tokens = {name: add_token(tokens_file, name) for name in ("alice", "bob")}
    port = free_port()
    argv = [sys.executable, "-m", "mcp_ollama", "serve", "--http", "--port", str(port)]
    argv += ["--tokens-file", str(tokens_file), "--db", str(root / "s.sqlite3")]
    argv += ["--ollama-host", fake.url, "--preload", "off", "--log-level", "WARNING"]
    argv += ["--image-dirs", os.pathsep.join([str(files), "/"]), *caps]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MCP_OLLAMA_", "OLLAMA_")) and k != "HOME"
    }
    env |= {"HOME": str(root), "XDG_DATA_HOME": str(root / "data")}
    env |= {"MCP_OLLAMA_HTTP_MAX_BODY_BYTES": str(96 * MIB), "MCP_OLLAMA_MAX_PARALLEL": "64"}
    # glibc serves blocks under its dynamic mmap threshold (raised to the size of the last big block
    # freed, up to 32 MiB) from heaps it keeps: a plateau of about 160 MiB after the first call that
    # holds nothing. A fixed threshold hands every block of 1 MiB and more back when it is freed, so
    # that RSS measures what the server keeps.
    env["MALLOC_MMAP_THRESHOLD_"] = str(MIB)
    if HAS_OPERATOR_TOKEN:
        env["MCP_OLLAMA_HTTP_TOKEN"] = OPERATOR_TOKEN
        tokens[LOCAL] = OPERATOR_TOKEN
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_LIMIT
        while True:
            assert process.poll() is None, "the server exited while starting"
            try:
                if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield HttpServer(url, tokens, process, files)
    finally:
        process.terminate()
        process.wait(timeout=30)


@asynccontextmanager
async def http_client(server: HttpServer, era: str = "modern", name: str = "alice") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {server.tokens[name]}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        client_for(streamable_http_client(server.url + "/mcp", http_client=http), era) as client,
    ):
        yield client


@pytest.fixture
def fast_fake(fake: FakeOllama, monkeypatch: pytest.MonkeyPatch) -> FakeOllama:
    """The fake, checking images with the C base64 decoder (its Go-exact check reads 1 MB/s)."""

    def check(messages: Sequence[dict[str, Any]]) -> str | None:
        for message in messages:
            for image in message.get("images") or []:
                try:
                    base64.b64decode(image, validate=True)
                except ValueError:
                    return "illegal base64 data"
        return None

    monkeypatch.setattr(fake_ollama.chat, "_check_images", check)
    fake.models += [LLAVA, GEMMA3]  # gemma3: 128 Ki tokens of context, room for sixteen images
    return fake


def images(size: int) -> list[str]:
    """Sixteen different PNG-looking images of ``size`` bytes each, as base64."""
    return [b64(PNG + os.urandom(size - len(PNG))) for _ in range(16)]


@pytest.fixture(scope="module")
def big_images() -> list[str]:
    return images(IMAGE_MIB * MIB)


@pytest.mark.anyio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
async def test_over_http_no_path_is_read_for_anyone(
    http_server: HttpServer, fast_fake: FakeOllama, era: str
) -> None:
    files = http_server.files
    picture = files / "pic.png"
    picture.write_bytes(PNG)
    private = files / "private.png"
    private.write_bytes(PNG)
    private.chmod(0o600)
    link = files / "link.png"
    if not link.exists():
        link.symlink_to(picture)
    (files / "sub").mkdir(exist_ok=True)
    paths = [
        str(picture),
        str(private),
        str(link),
        f"{files}/sub/../pic.png",
        f"/proc/self/root{picture}",
        str(files / "missing.png"),
        "/etc/hostname",
    ]
    args = {"message": "look", "model": "llava:7b"}
    for name in http_server.tokens:
        async with http_client(http_server, era, name) as client:
            texts = [text_of(await client.call_tool("chat", {**args, "images": [path]})) for path in paths]
            inline = await client.call_tool("chat", {**args, "images": [PNG_B64]})
        assert texts == [path_refused(0)] * len(paths), name
        assert structured(inline)["answer"].endswith("I see 1 image.")
    assert [body["messages"][-1]["images"] for body in chats(fast_fake)] == [[PNG_B64]] * len(
        http_server.tokens
    )


@pytest.mark.anyio
async def test_over_http_the_caps_hold_with_their_sentences(
    http_server: HttpServer, fast_fake: FakeOllama
) -> None:
    args = {"message": "look", "model": "gemma3:4b"}
    sixteen = images(SMALL_IMAGE)
    over = [*sixteen[:15], b64(PNG + os.urandom(SMALL_IMAGE + 1024 - len(PNG)))]
    six = sixteen[:6]
    fast_fake.enqueue(Behavior(hang=True))
    async with http_client(http_server) as alice, http_client(http_server, name="bob") as bob:
        refused = await alice.call_tool("chat", {**args, "images": over})
        assert refused.is_error is True and text_of(refused) == call_cap_refused(CALL_CAP)
        async with anyio.create_task_group() as tg:
            tg.start_soon(alice.call_tool, "chat", {**args, "images": sixteen})
            assert await eventually(lambda: fast_fake.active_streams == 1, 60)
            busy = await alice.call_tool("chat", {**args, "images": six})
            assert busy.is_error is True and text_of(busy) == in_flight_refused(IN_FLIGHT_CAP)
            other = await bob.call_tool("chat", {**args, "images": six})  # each principal its own
            assert structured(other)["answer"].endswith("I see 6 images.")
            tg.cancel_scope.cancel()
        assert await anyio.to_thread.run_sync(fast_fake.wait_for_hangup, 30.0)
        for _ in range(300):  # the cancelled turn lets go of its images as it ends
            again = await alice.call_tool("chat", {**args, "images": six})
            if again.is_error is not True:
                break
            assert text_of(again) == in_flight_refused(IN_FLIGHT_CAP)
            await anyio.sleep(0.1)
        assert structured(again)["answer"].endswith("I see 6 images.")


@pytest.mark.slow
@pytest.mark.anyio
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
async def test_over_http_the_server_keeps_no_image_bytes_after_a_call(
    rss_server: HttpServer, fast_fake: FakeOllama, big_images: list[str]
) -> None:
    args = {"message": "look", "model": "gemma3:4b", "images": big_images}
    rss: list[int] = []
    async with http_client(rss_server) as client:
        for number in range(20):
            result = await client.call_tool("chat", {**args, "message": f"look {number}"})
            assert structured(result)["answer"].endswith("I see 16 images."), number
            fast_fake.reset()  # the fake keeps every body it gets: not in the server's process
            await anyio.sleep(0.2)
            rss.append(rss_server.rss_kib())
    print(f"server VmRSS after call 1: {rss[0] / 1024:.0f} MiB, after call 20: {rss[-1] / 1024:.0f} MiB")
    print("all:", [round(r / 1024) for r in rss])
    assert rss[-1] - rss[0] < 150 * 1024, rss
