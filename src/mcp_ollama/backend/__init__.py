"""Ollama's REST API over httpx: typed request and response models and an async client.

This package (``models`` and ``admin_models``: the typed wire format, importable without httpx;
``client``; ``catalog``; ``pool``; ``connect``) owns every byte exchanged with Ollama:
``OllamaClient`` posts chat requests and streams the NDJSON answer as ``ChatChunk`` objects, lists
and describes models, and maps every transport failure, error status and broken stream to the
error tree in ``errors.py`` (its Ollama branch in ``backend_errors.py``) in one place, so that no
httpx exception ever reaches a caller. It knows nothing about MCP; its settings (URL, timeouts,
credentials) are passed in by whoever builds it. Credentials travel only in the ``Authorization``
header, never in the URL, so no error text or log line holds them.
"""
