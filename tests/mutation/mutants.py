"""The mutants: small planted bugs, each a text substitution, with the tests that must catch it.

Each row of issue 22's table has one or more. ``old`` must occur exactly once in its file; when the
code moves, the runner reports the mutant as stale and the substitution is updated here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    row: str
    """Where issue 22's table puts it."""
    change: str
    """The planted change, in words."""
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]
    """pytest node ids that must fail with the mutant in place."""


AUTH = "src/mcp_ollama/transports/auth.py"
SESSIONS = "src/mcp_ollama/store/sessions.py"
JOBS = "src/mcp_ollama/store/jobs.py"
JOB_RECORDS = "src/mcp_ollama/store/job_records.py"
CHAT = "src/mcp_ollama/core/chat.py"
TASKS = "src/mcp_ollama/server/tasks.py"
SESSION_TOOLS = "src/mcp_ollama/server/session_tools.py"
PROMPTS = "src/mcp_ollama/server/prompts.py"
ENDPOINT = "src/mcp_ollama/transports/chat_endpoint.py"
EXPOSURE = "src/mcp_ollama/transports/exposure.py"
POOL = "src/mcp_ollama/backend/pool.py"
FAILOVER = "src/mcp_ollama/backend/failover.py"
ASK = "src/mcp_ollama/cli/ask.py"
T_AUTH = "tests/test_auth.py::"
T_HTTP = "tests/test_http.py::"
T_EXPOSURE = "tests/test_exposure.py::"
T_POOL = "tests/test_pool_failover.py::"
T_ASK = "tests/test_ask.py::"
T_LEASES = "tests/test_leases.py::"
T_STORE = "tests/test_store.py::"

MUTANTS: list[Mutant] = [
    # --- auth.py ---------------------------------------------------------------------------------
    Mutant(
        "auth-malformed-keeps-old",
        "auth.py",
        "a malformed tokens file keeps the old tokens",
        (
            Edit(
                AUTH,
                "            self._refuse_all(digest, exc)\n            return\n",
                "            return\n",
            ),
        ),
        (T_AUTH + "test_a_half_edited_file_refuses_every_token_until_it_is_fixed",),
    ),
    Mutant(
        "auth-local-accepted",
        "auth.py",
        "a token named `local` accepted from a hand-edited file",
        (Edit(AUTH, '        if match["name"] == LOCAL_PRINCIPAL:\n', "        if False:\n"),),
        (T_AUTH + "test_a_token_named_local_typed_into_the_file_is_never_accepted",),
    ),
    # --- store/sessions.py and core/chat.py: leases -----------------------------------------------
    Mutant(
        "lease-kept-by-stored-turn",
        "store/sessions.py (leases)",
        "the lease is not released in the transaction that stores the turn",
        (Edit(SESSIONS, "            if lease_owner is not None:\n", "            if False:\n"),),
        (
            T_LEASES + "test_storing_the_turn_ends_its_lease_in_the_same_transaction",
            T_LEASES + "test_a_stored_turn_leaves_no_lease",
        ),
    ),
    Mutant(
        "lease-not-passed-to-commit",
        "chat.py (leases)",
        "the turn stores itself without naming its lease (lease not released with the stored turn)",
        (Edit(CHAT, "lease_owner=self.owner if lease else None,", "lease_owner=None,"),),
        (T_LEASES + "test_a_stored_turn_leaves_no_lease",),
    ),
    Mutant(
        "lease-kept-after-failure",
        "chat.py (leases)",
        "the lease is not released after a failed or cancelled turn",
        (
            Edit(
                CHAT,
                "            except BaseException:\n                if leased:\n",
                "            except BaseException:\n                if False:\n",
            ),
        ),
        (
            T_LEASES + "test_a_failed_turn_gives_its_lease_back",
            T_LEASES + "test_a_cancelled_turn_gives_its_lease_back",
        ),
    ),
    Mutant(
        "lease-kept-after-store-error",
        "chat.py (leases)",
        "the lease is not released when the turn could not be stored",
        (Edit(CHAT, "if leased and outcome.store_error is not None:", "if False:"),),
        (T_LEASES + "test_a_turn_that_cannot_be_stored_gives_its_lease_back",),
    ),
    Mutant(
        "lease-expired-still-blocks",
        "store/sessions.py (leases)",
        "an expired lease still blocks",
        (
            Edit(
                SESSIONS,
                "if row is not None and row[0] != owner and _parse_time(row[1]) > now:",
                "if row is not None and row[0] != owner:",
            ),
        ),
        (
            T_LEASES + "test_a_lease_whose_holder_stopped_renewing_it_does_not_block",
            T_LEASES + "test_a_dead_processs_lease_does_not_hold_up_the_next_turn",
        ),
    ),
    Mutant(
        "lease-renews-everyones",
        "store/sessions.py (leases)",
        "renewal pushes back every process's leases",
        (
            Edit(
                SESSIONS,
                '"UPDATE session_leases SET expires_at = ? WHERE owner = ?", (until, owner)',
                '"UPDATE session_leases SET expires_at = ? WHERE ? IS NOT NULL", (until, owner)',
            ),
        ),
        (T_LEASES + "test_renewal_pushes_back_the_renewers_own_leases_only",),
    ),
    Mutant(
        "lease-released-by-anyone",
        "store/sessions.py (leases)",
        "release_lease ends another owner's lease",
        (
            Edit(
                SESSIONS,
                '"DELETE FROM session_leases WHERE session_id = ? AND owner = ?", (key, owner))',
                '"DELETE FROM session_leases WHERE session_id = ? AND ? IS NOT NULL", (key, owner))',
            ),
        ),
        (T_LEASES + "test_release_ends_only_the_owners_lease",),
    ),
    # --- store/jobs.py ---------------------------------------------------------------------------
    Mutant(
        "job-keyed-by-bare-session",
        "store/job_records.py (job rows, both stores)",
        "job rows keyed by the bare session id",
        (
            Edit(
                JOB_RECORDS,
                'session_key(job.session_id, job.principal) if job.session_id else "",',
                "job.session_id,",
            ),
        ),
        (T_STORE + "test_a_job_is_found_in_its_principals_session_only",),
    ),
    Mutant(
        "purge-running-records",
        "store/jobs.py (purge)",
        "running records past their ttl purged",
        (Edit(JOBS, "expires_at < ? AND status != 'running'\",", 'expires_at < ?",'),),
        (T_STORE + "test_a_running_task_record_outlives_its_ttl",),
    ),
    # --- users apart: tasks, delete, clear, completion -------------------------------------------
    Mutant(
        "task-requester-without-principal",
        "server/tasks.py (task requester)",
        "the principal no longer prefixed to the requester",
        (Edit(TASKS, 'return f"{principal(ctx)}|{_requester(ctx)}"', "return _requester(ctx)"),),
        (T_HTTP + "test_a_modern_task_is_not_found_by_another_principal_with_the_same_client",),
    ),
    Mutant(
        "delete-without-principal",
        "server/session_tools.py (delete_session)",
        "delete without the principal",
        (
            Edit(
                SESSION_TOOLS,
                "store.delete_session(sid, principal=who) if delete else",
                "store.delete_session(sid) if delete else",
            ),
        ),
        (T_HTTP + "test_three_owners_of_one_session_id_stay_apart_by_every_path",),
    ),
    Mutant(
        "clear-without-principal",
        "server/session_tools.py (clear_session)",
        "clear without the principal",
        (
            Edit(
                SESSION_TOOLS, "else store.clear_session(sid, principal=who)", "else store.clear_session(sid)"
            ),
        ),
        (T_HTTP + "test_three_owners_of_one_session_id_stay_apart_by_every_path",),
    ),
    Mutant(
        "completion-without-principal",
        "server/prompts.py (completion)",
        "session-id completion asks the store for the local user's ids",
        (
            Edit(
                PROMPTS,
                "partial(state.store.session_ids, argument.value, limit=101, principal=principal(ctx))",
                "partial(state.store.session_ids, argument.value, limit=101)",
            ),
        ),
        (T_HTTP + "test_three_owners_of_one_session_id_stay_apart_by_every_path",),
    ),
    Mutant(
        "store-completion-all-principals",
        "store/sessions.py (completion)",
        "completion with an empty prefix lists every principal's ids",
        (
            Edit(
                SESSIONS,
                '"SELECT id FROM sessions WHERE principal = ? ORDER BY updated_at DESC, id DESC LIMIT ?"',
                '"SELECT id FROM sessions WHERE ? IS NOT NULL ORDER BY updated_at DESC, id DESC LIMIT ?"',
            ),
        ),
        (
            T_STORE + "test_session_id_completion_lists_the_principals_own_ids_only",
            T_HTTP + "test_three_owners_of_one_session_id_stay_apart_by_every_path",
        ),
    ),
    Mutant(
        "store-completion-prefix-any-principal",
        "store/sessions.py (completion)",
        "completion with a prefix matches other principals' keys in range",
        (
            Edit(
                SESSIONS,
                '"SELECT id FROM sessions WHERE id >= ? AND id < ? AND principal = ?"',
                '"SELECT id FROM sessions WHERE id >= ? AND id < ? AND ? IS NOT NULL"',
            ),
        ),
        (T_STORE + "test_session_id_completion_lists_the_principals_own_ids_only",),
    ),
    Mutant(
        "store-completion-prefix-unscoped",
        "store/sessions.py (completion)",
        "completion with a prefix looks in the local user's key range",
        (
            Edit(
                SESSIONS,
                "params = (scope + prefix, scope + prefix + _ABOVE_ID_CHARS, principal, limit)",
                "params = (prefix, prefix + _ABOVE_ID_CHARS, principal, limit)",
            ),
        ),
        (
            T_STORE + "test_session_id_completion_lists_the_principals_own_ids_only",
            T_HTTP + "test_three_owners_of_one_session_id_stay_apart_by_every_path",
        ),
    ),
    Mutant(
        "job-keyed-by-bare-session-over-http",
        "store/job_records.py (job rows, both stores)",
        "job rows keyed by the bare session id (seen through chat_result after a restart)",
        (
            Edit(
                JOB_RECORDS,
                'session_key(job.session_id, job.principal) if job.session_id else "",',
                "job.session_id,",
            ),
        ),
        (T_HTTP + "test_a_job_the_server_lost_is_found_by_its_principal_only",),
    ),
    # --- transports: POST /chat and the allowlists -----------------------------------------------
    Mutant(
        "chat-hangup-not-cancelled",
        "transports/chat_endpoint.py",
        "a hang-up no longer cancels the job",
        (
            Edit(
                ENDPOINT, '                job.cancel("the HTTP client hung up")\n', "                pass\n"
            ),
        ),
        (T_HTTP + "test_post_chat_hang_up_stops_the_model_and_stores_nothing",),
    ),
    Mutant(
        "chat-body-cap-off",
        "transports/chat_endpoint.py",
        "the 1 MiB body cap not enforced",
        (Edit(ENDPOINT, "            if len(body) > MAX_BODY_BYTES:\n", "            if False:\n"),),
        (T_HTTP + "test_post_chat_refuses_a_body_over_one_mib",),
    ),
    Mutant(
        "origins-http-only-sdk-list",
        "transports/exposure.py",
        "only http:// origins in the SDK's allowlist",
        (Edit(EXPOSURE, '        for scheme in ("http", "https"):\n', '        for scheme in ("http",):\n'),),
        (
            T_EXPOSURE + "test_origins_over_https_are_allowed_as_well_as_http",
            T_HTTP + "test_a_page_on_this_host_behind_tls_is_allowed",
        ),
    ),
    Mutant(
        "origins-http-only-parsed",
        "transports/exposure.py",
        "only http:// origins pass the parsed Origin check",
        (
            Edit(
                EXPOSURE,
                '_ORIGIN = re.compile(r"(?P<scheme>https?)://',
                '_ORIGIN = re.compile(r"(?P<scheme>http)://',
            ),
        ),
        (
            T_EXPOSURE + "test_origins_over_https_are_allowed_as_well_as_http",
            T_HTTP + "test_a_page_on_this_host_behind_tls_is_allowed",
        ),
    ),
    Mutant(
        "bind-not-an-allowed-host",
        "transports/exposure.py",
        "the bind address not in the Host allowlist",
        (Edit(EXPOSURE, "        names.append(_host_form(bind))\n", "        pass\n"),),
        (
            T_EXPOSURE + "test_the_bind_address_is_an_allowed_host",
            T_HTTP + "test_the_bind_address_is_an_allowed_host",
        ),
    ),
    Mutant(
        "open-bind-allowed",
        "transports/exposure.py (weak test)",
        "binding beyond loopback without tokens is allowed (the old test hung instead of failing)",
        (Edit(EXPOSURE, "    if tokens_file is None and not is_loopback(bind):\n", "    if False:\n"),),
        (
            T_EXPOSURE + "test_binding_beyond_loopback_needs_a_tokens_file",
            # A server that went on serving is a failure after the test's time limit, not a hang.
            T_HTTP + "test_binding_beyond_loopback_without_tokens_is_refused[0.0.0.0]",
        ),
    ),
    # --- backend/pool.py -------------------------------------------------------------------------
    Mutant(
        "pool-429-not-failed-over",
        "backend/failover.py",
        "429 not failed over",
        (Edit(FAILOVER, "return exc.status == 429 or exc.status >= 500", "return exc.status >= 500"),),
        (T_POOL + "test_a_rate_limited_429_passes_the_chat_to_the_next_server",),
    ),
    Mutant(
        "pool-first-chunk-unread",
        "backend/pool.py",
        "the first chunk not read before deciding (a stand-in chunk instead)",
        (
            Edit(
                POOL,
                "return chunks, await anext(chunks)",
                'return chunks, ChatChunk(model=request.model, created_at="", done=False)',
            ),
        ),
        (T_POOL + "test_a_stream_that_fails_on_its_first_line_passes_the_chat_to_the_next_server",),
    ),
    Mutant(
        "pool-refused-not-set-aside",
        "backend/pool.py",
        "a refused server not marked down",
        (
            Edit(
                POOL,
                "                    server.fail(exc)\n                    broke_before = ",
                "                    broke_before = ",
            ),
        ),
        (T_POOL + "test_a_refusing_server_is_set_aside_after_one_refusal",),
    ),
    # --- cli/ask.py ------------------------------------------------------------------------------
    Mutant(
        "ask-raw-tokens",
        "cli/ask.py",
        "clean_text dropped on printed tokens",
        (
            Edit(
                ASK,
                "        text = clean_text(text)  # model output is data",
                "        pass  # model output is data",
            ),
        ),
        (T_ASK + "test_escape_sequences_from_the_model_never_reach_the_terminal",),
    ),
    Mutant(
        "ask-unsaved-exits-0",
        "cli/ask.py",
        "an unsaved turn exits 0",
        (
            Edit(
                ASK,
                "file=sys.stderr)\n        return 1\n    printer.close()",
                "file=sys.stderr)\n        return 0\n    printer.close()",
            ),
        ),
        (T_ASK + "test_a_turn_that_could_not_be_stored_exits_1_and_says_so",),
    ),
]
