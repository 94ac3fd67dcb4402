"""OllamaPool against loopback fake Ollamas: routing, health, failover, and the host-list parser.

Servers misbehave for real here (refused, hung, black-holed, cut, slow); requests are counted per
server, and conditions are waited for with generous limits, never timed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack

import anyio
import anyio.lowlevel
import pytest

from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend.health import Health, Trouble
from mcp_ollama.backend.models import ChatMessage, ChatRequest
from mcp_ollama.backend.pool import DEFAULT_MAX_PARALLEL, OllamaPool, OnWait, Tuning, model_key
from mcp_ollama.backend_errors import ModelNotFound, OllamaStatusError, OllamaUnreachable, StreamError
from mcp_ollama.config.hosts import DEFAULT_OLLAMA_URL, parse_ollama_hosts
from mcp_ollama.errors import SettingsError

from .fake_ollama import LLAMA3, QWEN3, Behavior, BlackHole, FakeOllama, HungServer

pytestmark = pytest.mark.anyio

LIMIT = 10.0
"""Seconds a test waits for a condition before it fails; never a measure of speed."""
QUICK = Tuning(
    refused_backoff=(60.0, 60.0),
    timeout_backoff=(60.0, 60.0),
    broken_backoff=(60.0, 60.0),
    busy_delay=(0.01, 0.05),
)
"""Short busy retries; a server set aside stays aside for the whole test. Probes and listings keep
their generous default timeouts: a loaded machine must not make a healthy fake look hung."""
HUNG = dataclasses.replace(QUICK, list_timeout=2.0)
"""How long a listing may take before its server counts as hung, for the tests with a hung one."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_a() -> Iterator[FakeOllama]:
    with FakeOllama(models=[LLAMA3]) as server:
        yield server


@pytest.fixture
def fake_b() -> Iterator[FakeOllama]:
    with FakeOllama(models=[QWEN3]) as server:
        yield server


def client(fake: FakeOllama | HungServer | BlackHole | str, connect: float = 2.0) -> OllamaClient:
    url = fake if isinstance(fake, str) else fake.url
    return OllamaClient(url, connect_timeout=connect, read_timeout=30.0)


@pytest.fixture
async def pool(fake_a: FakeOllama, fake_b: FakeOllama) -> AsyncIterator[OllamaPool]:
    async with OllamaPool([client(fake_a), client(fake_b)], max_parallel=4) as opened:
        yield opened


def chat(model: str, text: str = "hello there") -> ChatRequest:
    return ChatRequest(model=model, messages=[ChatMessage(role="user", content=text)])


async def answer(pool: OllamaPool, request: ChatRequest, on_wait: OnWait | None = None) -> str:
    async with pool.chat_stream(request, on_wait=on_wait) as chunks:
        return "".join([chunk.message.content async for chunk in chunks if chunk.message])


async def collect(pool: OllamaPool, request: ChatRequest, into: list[str]) -> None:
    """Keep each piece of the answer as it comes: what arrived before a failure is there after it."""
    async with pool.chat_stream(request) as chunks:
        async for chunk in chunks:
            into.append(chunk.message.content if chunk.message else "")


def paths(fake: FakeOllama) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests]


async def until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(LIMIT):
        while not predicate():
            await anyio.sleep(0.01)


async def preload(fake: FakeOllama, model: str = "llama3:8b") -> None:
    async with client(fake) as direct:
        await direct.load(ChatRequest(model=model, messages=[]))


# --- routing ------------------------------------------------------------------------------------


async def test_each_chat_goes_to_a_server_that_has_its_model(
    pool: OllamaPool, fake_a: FakeOllama, fake_b: FakeOllama
) -> None:
    assert await answer(pool, chat("qwen3:8b"))
    assert await answer(pool, chat("llama3:8b"))
    assert [body["model"] for body in fake_a.chat_requests] == ["llama3:8b"]
    assert [body["model"] for body in fake_b.chat_requests] == ["qwen3:8b"]


async def test_a_name_without_a_tag_means_latest(fake_a: FakeOllama, fake_b: FakeOllama) -> None:
    fake_b.models.append(dataclasses.replace(LLAMA3, name="mistral:latest"))
    async with OllamaPool([client(fake_a), client(fake_b)]) as pool:
        assert await answer(pool, chat("mistral"))
    assert fake_a.chat_requests == []
    assert [body["model"] for body in fake_b.chat_requests] == ["mistral"]
    assert model_key("Mistral") == model_key("mistral:latest") != model_key("mistral:7b")
    assert model_key("host:5000/team/mistral") == "host:5000/team/mistral:latest"


async def test_a_free_slot_comes_before_a_loaded_model_before_fewer_chats(
    fake_a: FakeOllama, fake_b: FakeOllama
) -> None:
    fake_b.models[:] = [LLAMA3]
    async with OllamaPool([client(fake_a), client(fake_b)], max_parallel=4) as pool, AsyncExitStack() as held:
        await held.enter_async_context(pool.chat_stream(chat("llama3:8b")))
        assert pool.in_flight() == {fake_a.url: 1, fake_b.url: 0}
        await held.enter_async_context(pool.chat_stream(chat("llama3:8b")))
        assert pool.in_flight() == {fake_a.url: 2, fake_b.url: 0}  # loaded there: no load on B
    assert pool.in_flight() == {fake_a.url: 0, fake_b.url: 0}
    async with OllamaPool([client(fake_a), client(fake_b)], max_parallel=1) as pool, AsyncExitStack() as held:
        await held.enter_async_context(pool.chat_stream(chat("llama3:8b")))  # A: loaded (/api/ps)
        await held.enter_async_context(pool.chat_stream(chat("llama3:8b")))  # B: A has no free slot
        assert pool.in_flight() == {fake_a.url: 1, fake_b.url: 1}
    assert (len(fake_a.chat_requests), len(fake_b.chat_requests)) == (3, 1)


async def test_a_server_never_tried_counts_as_fast(fake_a: FakeOllama, fake_b: FakeOllama) -> None:
    fake_b.models[:] = [LLAMA3]
    await preload(fake_a)
    await preload(fake_b)  # loaded on both: the time to first token decides
    async with OllamaPool([client(fake_a), client(fake_b)], max_parallel=4) as pool:
        assert await answer(pool, chat("llama3:8b"))
        assert await answer(pool, chat("llama3:8b"))
    assert (len(fake_a.chat_requests), len(fake_b.chat_requests)) == (2, 2)  # preloads included


async def test_model_details_come_from_a_server_that_has_the_model(
    pool: OllamaPool, fake_b: FakeOllama
) -> None:
    catalog = await pool.catalog_for("qwen3:8b")
    assert catalog.url == fake_b.url
    assert (await catalog.show("qwen3:8b")).context_length == QWEN3.context_length
    assert (await pool.catalog_client("qwen3:8b")).base_url == fake_b.url
    with pytest.raises(ModelNotFound):  # qwen3 means qwen3:latest, which no server has
        await pool.catalog_for("qwen3")


async def test_model_details_come_from_a_server_that_answers(fake_a: FakeOllama, fake_b: FakeOllama) -> None:
    fake_b.models[:] = [LLAMA3]
    async with OllamaPool([client(fake_a), client(fake_b)], tuning=QUICK) as pool:
        await pool.where()  # both lists read: A, first listed, looks fine
        fake_a.stop()
        catalog = await pool.catalog_for("llama3:8b")
        assert catalog.url == fake_b.url and catalog.cached("llama3:8b") is not None
        assert (await pool.catalog_for("llama3:8b")).url == fake_b.url  # no second try on A
    assert paths(fake_b).count("POST /api/show") == 1


async def test_an_unknown_model_names_the_models_of_every_server(
    pool: OllamaPool, fake_a: FakeOllama, fake_b: FakeOllama
) -> None:
    with pytest.raises(ModelNotFound) as caught:
        await answer(pool, chat("llama3:70b"))
    assert caught.value.pulled == ["llama3:8b", "qwen3:8b"]
    assert "Did you mean 'llama3:8b'?" in str(caught.value)
    assert fake_a.url in str(caught.value) and fake_b.url in str(caught.value)
    assert fake_a.chat_requests == fake_b.chat_requests == []


async def test_a_model_pulled_since_the_list_was_read_is_found(pool: OllamaPool, fake_b: FakeOllama) -> None:
    assert await answer(pool, chat("llama3:8b"))  # both lists read and cached
    fake_b.models.append(dataclasses.replace(LLAMA3, name="phi3:mini"))
    assert await answer(pool, chat("phi3:mini"))
    assert [body["model"] for body in fake_b.chat_requests] == ["phi3:mini"]


async def test_where_says_which_server_has_which_model(
    pool: OllamaPool, fake_a: FakeOllama, fake_b: FakeOllama
) -> None:
    found = await pool.where()
    assert list(found) == [fake_a.url, fake_b.url]
    assert found[fake_a.url].models == ["llama3:8b"] and found[fake_a.url].error is None
    assert found[fake_b.url].models == ["qwen3:8b"]
    fake_b.stop()
    found = await pool.where(fresh=True)
    assert found[fake_a.url].models == ["llama3:8b"]
    down = found[fake_b.url]
    assert down.models == []
    assert down.error is not None and "unreachable" in down.error


# --- failover -----------------------------------------------------------------------------------


async def test_a_chat_goes_to_the_other_server_when_one_stops(fake_a: FakeOllama, fake_b: FakeOllama) -> None:
    fake_b.models[:] = [LLAMA3]
    async with OllamaPool([client(fake_a), client(fake_b)]) as pool:
        assert await answer(pool, chat("llama3:8b"))
        assert len(fake_a.chat_requests) == 1  # the lists are read and cached now
        fake_a.stop()
        assert await answer(pool, chat("llama3:8b"))
        assert await answer(pool, chat("llama3:8b"))
        assert len(fake_b.chat_requests) == 2
        assert (await pool.where(fresh=True))[fake_a.url].error is not None


async def test_a_busy_server_passes_the_chat_to_the_next(fake_a: FakeOllama, fake_b: FakeOllama) -> None:
    fake_b.models[:] = [LLAMA3]
    fake_a.enqueue(Behavior(status=503, error="server busy, please try again"))
    async with OllamaPool([client(fake_a), client(fake_b)]) as pool:
        assert await answer(pool, chat("llama3:8b"))
    assert (len(fake_a.chat_requests), len(fake_b.chat_requests)) == (1, 1)


async def test_a_bad_request_is_not_tried_on_another_server(fake_a: FakeOllama, fake_b: FakeOllama) -> None:
    fake_b.models[:] = [LLAMA3]
    fake_a.enqueue(Behavior(status=400, error="invalid options"))
    async with OllamaPool([client(fake_a), client(fake_b)]) as pool:
        with pytest.raises(OllamaStatusError) as caught:
            await answer(pool, chat("llama3:8b"))
    assert caught.value.status == 400
    assert fake_b.chat_requests == []


async def test_a_model_removed_since_listing_is_found_on_the_other_server(
    fake_a: FakeOllama, fake_b: FakeOllama
) -> None:
    fake_b.models[:] = [LLAMA3]
    async with (
        OllamaPool([client(fake_a), client(fake_b)], max_parallel=4) as pool,
        pool.chat_stream(chat("llama3:8b")),  # on A, and A runs it: A comes first
    ):
        fake_a.models[:] = [QWEN3]  # the cached list still says llama3 is on A
        assert await answer(pool, chat("llama3:8b"))
    assert (len(fake_a.chat_requests), len(fake_b.chat_requests)) == (2, 1)


async def test_a_busy_server_is_waited_for_when_the_others_fail(
    fake_a: FakeOllama, fake_b: FakeOllama
) -> None:
    fake_b.models[:] = [LLAMA3]
    fake_a.enqueue(Behavior(status=503, error="server busy, please try again"))
    fake_b.enqueue(Behavior(status=500, error="runner crashed"))
    told: list[str] = []
    async with OllamaPool([client(fake_a), client(fake_b)], tuning=QUICK) as pool:
        assert await answer(pool, chat("llama3:8b"), on_wait=told.append)
    assert len(fake_a.chat_requests) + len(fake_b.chat_requests) == 3
    assert told == [f"Ollama at {fake_a.url[7:]} is busy; waiting…"]


async def test_busy_for_too_long_gives_the_last_busy_answer(fake_a: FakeOllama, fake_b: FakeOllama) -> None:
    fake_b.models[:] = [LLAMA3]
    fake_a.default = Behavior(status=503, error="server busy")
    fake_b.default = Behavior(status=429, error="too many requests")
    told: list[str] = []
    async with OllamaPool(
        [client(fake_a), client(fake_b)], tuning=dataclasses.replace(QUICK, busy_wait=0.3)
    ) as pool:
        with pytest.raises(OllamaStatusError) as caught:
            await answer(pool, chat("llama3:8b"), on_wait=told.append)
    assert caught.value.status in (429, 503)
    assert len(fake_a.chat_requests) >= 2 and len(fake_b.chat_requests) >= 2  # retried, then gave up
    assert len(told) == 1 and told[0].endswith("are busy; waiting…")


async def test_a_busy_single_server_is_waited_for(fake_a: FakeOllama) -> None:
    fake_a.enqueue(
        Behavior(status=503, error="server busy, please try again. maximum pending requests exceeded")
    )
    told: list[str] = []
    async with OllamaPool([client(fake_a)], tuning=QUICK) as pool:
        assert await answer(pool, chat("llama3:8b"), on_wait=told.append)
    assert len(fake_a.chat_requests) == 2
    assert told == [f"Ollama at {fake_a.url[7:]} is busy; waiting…"]


async def test_no_server_answering_names_every_server(fake_a: FakeOllama, fake_b: FakeOllama) -> None:
    async with OllamaPool([client(fake_a), client(fake_b)]) as pool:
        fake_a.stop()
        fake_b.stop()
        with pytest.raises(OllamaUnreachable) as caught:
            await answer(pool, chat("llama3:8b"))
        assert fake_a.url in str(caught.value) and fake_b.url in str(caught.value)
        with pytest.raises(OllamaUnreachable):  # both passed over as down now: still an answer
            await answer(pool, chat("llama3:8b"))


async def test_a_server_set_aside_is_probed_before_chats_go_back(
    fake_a: FakeOllama, fake_b: FakeOllama
) -> None:
    fake_b.models[:] = [LLAMA3]
    port = fake_a.port
    no_back_off = dataclasses.replace(QUICK, refused_backoff=(0.0, 0.0))
    async with OllamaPool([client(fake_a), client(fake_b)], max_parallel=1, tuning=no_back_off) as pool:
        fake_a.stop()
        assert await answer(pool, chat("llama3:8b"))  # on B; A set aside
        assert (await pool.where())[fake_a.url].error is not None
        with FakeOllama(port=port, models=[LLAMA3]) as again:
            async with pool.slot("llama3:8b"):  # B's slot (A is still set aside)
                assert await answer(pool, chat("llama3:8b"))
            assert paths(again)[0] == "GET /api/version"  # the probe, before any chat
            assert len(again.chat_requests) == 1
    assert len(fake_b.chat_requests) == 1


def test_the_back_off_doubles_up_to_its_cap() -> None:
    health = Health(Tuning())
    assert [health.fail(Trouble.REFUSED, now=0.0) for _ in range(6)] == [5, 10, 20, 40, 60, 60]
    assert not health.healthy() and health.resting(now=59.0) and health.due(now=60.0)
    health.probe_passed()
    assert health.healthy() and health.fail(Trouble.BROKEN, now=0.0) == 60  # still in a row
    health.succeeded()
    assert [health.fail(Trouble.TIMEOUT, now=0.0) for _ in range(5)] == [15, 30, 60, 120, 120]


# --- servers judged by behaviour ----------------------------------------------------------------


async def test_bad_servers_listed_first_lose_every_chat_after_the_first() -> None:
    """Hung, black-holed, breaking and slow servers listed before a healthy one."""
    with (
        HungServer() as hung,
        BlackHole() as hole,
        FakeOllama(models=[LLAMA3]) as breaking,
        FakeOllama(models=[LLAMA3]) as slow,
        FakeOllama(models=[LLAMA3]) as healthy,
    ):
        breaking.default = Behavior(cut_after=1)  # one token, then the connection is cut
        slow.default = Behavior(first_token_delay=30.0)  # far past the first-token timeout
        clients = [client(s, connect=0.5) for s in (hung, hole, breaking, slow, healthy)]
        answered: list[str] = []
        async with OllamaPool(clients, first_token_timeout=0.3, tuning=HUNG) as pool:
            with anyio.fail_after(LIMIT):
                with pytest.raises(StreamError):  # the first chat got a token from the breaking one
                    await answer(pool, chat("llama3:8b"))
                for n in range(5):
                    answered.append(await answer(pool, chat("llama3:8b", f"chat {n}")))
            where = await pool.where()
        assert all(answered)
        assert [body["messages"][-1]["content"] for body in healthy.chat_requests] == [
            f"chat {n}" for n in range(5)
        ]
        assert len(breaking.chat_requests) == 1 and len(slow.chat_requests) == 1
        assert slow.wait_for_hangup()  # the slow one's stream was abandoned, not left running
        assert [url for url, found in where.items() if found.error is None] == [healthy.url]
        assert "unreachable" in (where[hole.url].error or "") or "not answering" in (
            where[hole.url].error or ""
        )


async def test_a_break_before_the_first_token_is_tried_once_elsewhere(
    fake_a: FakeOllama, fake_b: FakeOllama
) -> None:
    fake_b.models[:] = [LLAMA3]
    fake_a.default = Behavior(cut_after=0)
    async with OllamaPool([client(fake_a), client(fake_b)], tuning=QUICK) as pool:
        assert await answer(pool, chat("llama3:8b"))
        assert await answer(pool, chat("llama3:8b"))  # A is set aside: straight to B
    assert (len(fake_a.chat_requests), len(fake_b.chat_requests)) == (1, 2)


async def test_a_request_that_breaks_two_servers_is_not_tried_on_a_third(fake_a: FakeOllama) -> None:
    with FakeOllama(models=[LLAMA3]) as second, FakeOllama(models=[LLAMA3]) as third:
        for fake in (fake_a, second, third):
            fake.default = Behavior(error_after=0, error="llama runner process has terminated")
        async with OllamaPool([client(fake_a), client(second), client(third)], tuning=QUICK) as pool:
            with pytest.raises(StreamError):
                await answer(pool, chat("llama3:8b"))
        assert sorted(len(f.chat_requests) for f in (fake_a, second, third)) == [0, 1, 1]


async def test_a_break_after_tokens_is_raised_and_the_server_set_aside(
    fake_a: FakeOllama, fake_b: FakeOllama
) -> None:
    fake_b.models[:] = [LLAMA3]
    fake_a.enqueue(Behavior(malformed_after=2))
    got: list[str] = []
    async with OllamaPool([client(fake_a), client(fake_b)], tuning=QUICK) as pool:
        with pytest.raises(StreamError):
            await collect(pool, chat("llama3:8b"), got)
        assert len(got) == 2
        assert await answer(pool, chat("llama3:8b"))
    assert (len(fake_a.chat_requests), len(fake_b.chat_requests)) == (1, 1)


async def test_a_model_still_loading_is_waited_for(fake_a: FakeOllama, fake_b: FakeOllama) -> None:
    fake_b.models[:] = [LLAMA3]
    fake_a.load_delay = 60.0  # held until the watchdog has asked /api/ps
    texts: list[str] = []

    async def one(pool: OllamaPool) -> None:
        texts.append(await answer(pool, chat("llama3:8b")))

    async with (
        OllamaPool([client(fake_a), client(fake_b)], first_token_timeout=0.1, tuning=QUICK) as pool,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(one, pool)
        await until(lambda: paths(fake_a).count("GET /api/ps") >= 2)  # routing's, then the watchdog's
        fake_a.load_delay = 0.0
    assert texts and texts[0]
    assert (len(fake_a.chat_requests), len(fake_b.chat_requests)) == (1, 0)


# --- slots --------------------------------------------------------------------------------------


async def test_a_chat_waits_for_a_free_slot_and_says_so(fake_a: FakeOllama) -> None:
    waits: list[str] = []
    waiting = anyio.Event()
    second: list[str] = []

    def on_wait(message: str) -> None:
        waits.append(message)
        waiting.set()

    async def second_chat(pool: OllamaPool) -> None:
        async with pool.chat_stream(chat("llama3:8b", "second"), on_wait=on_wait) as chunks:
            second.extend([c.message.content async for c in chunks if c.message])

    with anyio.fail_after(LIMIT):
        # Leaving the first chat's block (before the task group's) gives its slot to the second.
        async with (
            OllamaPool([client(fake_a)], max_parallel=1) as pool,
            anyio.create_task_group() as tg,
            pool.chat_stream(chat("llama3:8b", "first")) as first,
        ):
            tg.start_soon(second_chat, pool)
            await waiting.wait()
            assert waits == [f"waiting for a free slot on {fake_a.url[7:]} (1 chat in flight)…"]
            assert len(fake_a.chat_requests) == 1
            assert [c async for c in first][-1].done
    assert second
    assert [body["messages"][-1]["content"] for body in fake_a.chat_requests] == ["first", "second"]
    assert waits == [waits[0]] and pool.in_flight() == {fake_a.url: 0}


async def test_a_cancelled_waiter_gives_up_its_place(fake_a: FakeOllama) -> None:
    waiting = anyio.Event()
    async with OllamaPool([client(fake_a)], max_parallel=1) as pool:
        with anyio.fail_after(LIMIT):
            async with pool.slot("llama3:8b"), anyio.create_task_group() as tg:

                async def wait_in_line() -> None:
                    async with pool.slot("llama3:8b", on_wait=lambda _: waiting.set()):
                        pytest.fail("the slot was never free")

                tg.start_soon(wait_in_line)
                await waiting.wait()
                tg.cancel_scope.cancel()
            assert pool.in_flight() == {fake_a.url: 0}
            assert await answer(pool, chat("llama3:8b"))


async def test_an_async_on_wait_is_awaited(fake_a: FakeOllama, fake_b: FakeOllama) -> None:
    told: list[str] = []
    waiting = anyio.Event()

    async def on_wait(message: str) -> None:
        await anyio.lowlevel.checkpoint()
        told.append(message)
        waiting.set()

    fake_b.models[:] = [LLAMA3]
    async with OllamaPool([client(fake_a), client(fake_b)], max_parallel=1) as pool:
        with anyio.fail_after(LIMIT):
            async with pool.slot("llama3:8b"), pool.slot("llama3:8b"), anyio.create_task_group() as tg:
                tg.start_soon(answer, pool, chat("llama3:8b"), on_wait)
                await waiting.wait()
                tg.cancel_scope.cancel()
        both = f"{fake_a.url[7:]} or {fake_b.url[7:]}"
        assert told == [f"waiting for a free slot on {both} (2 chats in flight)…"]
        assert pool.in_flight() == {fake_a.url: 0, fake_b.url: 0}


# --- one server ---------------------------------------------------------------------------------


async def test_one_server_is_used_as_before(fake_a: FakeOllama) -> None:
    async with OllamaPool([client(fake_a)]) as pool, client(fake_a) as alone:
        assert await answer(pool, chat("llama3:8b"))
        assert (await pool.catalog_for("llama3:8b")).url == fake_a.url
        assert paths(fake_a) == ["POST /api/chat"]  # no /api/tags on the way
        with pytest.raises(ModelNotFound) as pooled:
            await answer(pool, chat("nope:1b"))
        with pytest.raises(ModelNotFound) as direct:
            async with alone.chat_stream(chat("nope:1b")):
                pass
        assert str(pooled.value) == str(direct.value) and pooled.value.pulled is None
        fake_a.stop()
        with pytest.raises(OllamaUnreachable) as pooled_down:
            await answer(pool, chat("llama3:8b"))
        with pytest.raises(OllamaUnreachable) as direct_down:
            async with alone.chat_stream(chat("llama3:8b")):
                pass
        assert str(pooled_down.value) == str(direct_down.value)


def test_the_default_slot_count_is_ollamas() -> None:
    assert DEFAULT_MAX_PARALLEL == 1


# --- OLLAMA_HOST lists --------------------------------------------------------------------------


def test_a_host_list_is_read_item_by_item() -> None:
    hosts = parse_ollama_hosts("gpu1:11434, http://bob:s3cret@gpu2:8080 ,,[::1]:9")
    assert [h.url for h in hosts] == ["http://gpu1:11434", "http://gpu2:8080", "http://[::1]:9"]
    assert hosts[0].user is None
    assert hosts[1].user == "bob" and hosts[1].password is not None
    assert hosts[1].password.reveal() == "s3cret"
    assert [h.url for h in parse_ollama_hosts(["a", "b:1,c:2"])] == [
        "http://a:11434",
        "http://b:1",
        "http://c:2",
    ]
    assert [h.url for h in parse_ollama_hosts("")] == [DEFAULT_OLLAMA_URL]
    assert [h.url for h in parse_ollama_hosts(None)] == [DEFAULT_OLLAMA_URL]
    escaped = parse_ollama_hosts("u:p%2Cq@h")[0].password
    assert escaped is not None and escaped.reveal() == "p,q"


def test_a_host_listed_twice_is_refused() -> None:
    with pytest.raises(SettingsError, match="twice"):
        parse_ollama_hosts("localhost:11434,http://localhost:11434")
