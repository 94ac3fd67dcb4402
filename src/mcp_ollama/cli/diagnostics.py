"""``mcp-ollama doctor``: check what the server needs, and say how to fix what is missing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..backend.client import OllamaClient
from ..backend.connect import load_model, open_client, open_pool
from ..config import Settings
from ..errors import BackendError
from ..store import inspect_database, uses_postgres


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str


async def run_checks(settings: Settings, db_origin: str | None = None) -> list[Check]:
    """Ollama reachable, the default model pulled and loadable (timed), the session database writable."""
    checks: list[Check] = []
    async with open_client(settings) as client:
        try:
            version = await client.version()
        except BackendError as exc:
            checks.append(Check("ollama", False, str(exc)))
            checks.append(
                Check("model", False, f"not checked: Ollama is not reachable at {settings.ollama_url}")
            )
        else:
            checks.append(
                Check(
                    "ollama",
                    True,
                    f"Ollama {version} answers at {settings.ollama_url} ({settings.ollama_auth})",
                )
            )
            try:
                names = [m.name for m in await client.list_models()]
            except BackendError as exc:
                checks.append(Check("model", False, str(exc)))
            else:
                if _pulled(settings.model, names):
                    checks.append(Check("model", True, f"{settings.model} is pulled"))
                    checks.append(await _check_load(client, settings))
                else:
                    checks.append(
                        Check(
                            "model",
                            False,
                            f"{settings.model} is not pulled (have: {', '.join(names) or 'none'}). "
                            f"Fix: ollama pull {settings.model}",
                        )
                    )
    if settings.other_ollama_hosts:
        checks.append(await _check_hosts(settings))
    database = _check_database(settings)
    if db_origin is not None:
        # A host started with other variables (Claude Desktop does not read the shell's) opens another file.
        detail = f"{database.detail}; {db_origin} (a host without the same MCP_OLLAMA_DB uses another file)"
        database = Check(database.name, database.ok, detail)
    checks.append(database)
    return checks


async def _check_hosts(settings: Settings) -> Check:
    """Every Ollama server, and which models each has: chats go to one that has theirs."""
    async with open_pool(settings) as pool:
        found = await pool.where(fresh=True)
    parts = [
        f"{url}: {', '.join(host.models) or 'no models'}" if host.error is None else f"{url}: {host.error}"
        for url, host in found.items()
    ]
    has_default = any(_pulled(settings.model, host.models) for host in found.values())
    return Check("hosts", has_default, "; ".join(parts))


async def _check_load(client: OllamaClient, settings: Settings) -> Check:
    """Load the default model as the server's preload does, and say how long it took."""
    try:
        seconds = await load_model(client, settings)
    except BackendError as exc:
        return Check("load", False, f"{settings.model} did not load: {exc}")
    keep = settings.keep_alive or "Ollama's default, 5m"
    return Check(
        "load",
        True,
        f"{settings.model} loaded in {seconds:.1f} s (kept loaded for {keep}; the server preloads it "
        "at start unless --preload off)",
    )


def _pulled(model: str, names: list[str]) -> bool:
    # Ollama lists "llama3:latest" for a model pulled as "llama3".
    return model in names or (":" not in model and f"{model}:latest" in names)


def _check_database(settings: Settings) -> Check:
    db_path = settings.db_path
    if uses_postgres(settings):
        try:
            from ..store.postgres import inspect_postgres
        except ImportError as exc:
            return Check(
                "database",
                False,
                f"PostgreSQL support is not installed ({exc}). "
                "Fix: pip install 'mcp-server-ollama[postgres]'",
            )
        password = settings.db_password.reveal() if settings.db_password is not None else None
        ok, detail = inspect_postgres(db_path, password, db_path)  # changes nothing
        return Check("database", ok, detail)
    if db_path == ":memory:":
        return Check("database", True, "in memory (:memory:): sessions are not kept across restarts")
    ok, detail = inspect_database(db_path)  # changes nothing on disk
    return Check("database", ok, detail)


def format_report(checks: list[Check], write: Callable[[str], object]) -> bool:
    """Write one line per check; ``True`` when all passed."""
    for check in checks:
        write(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    return all(check.ok for check in checks)
