"""Rows 9, 9b, 9c and 10 of the report (the HTTP scenarios), from ``http_scenarios.run_http``; row 12
(the replicas) from ``replica_scenarios.bench_replicas``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness import pct, rounds_interval, summary
from report import row_adder

THROUGHPUT_FLOOR = 0.9
"""Row 9b's target: at least 0.9x the floor's chats per second with 50 clients (issue 21)."""


def split_rounds(variant: dict[str, Any]) -> list[list[float]]:
    """A variant's latencies, round by round (``latency_ms`` holds them in round order; each round
    records how many calls it timed)."""
    flat, out, start = variant["latency_ms"], [], 0
    for r in variant["rounds"]:
        out.append(flat[start : start + r["calls"]])
        start += r["calls"]
    return out


def evaluate(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    row = row_adder(rows)

    hc = res["http_clients"]
    fl, ou = hc["floor"]["latency_ms"], hc["ours"]["latency_ms"]
    n, calls = hc["clients"], hc["calls_per_client"]
    errors = sum(x["errors"] for x in hc["floor"]["rounds"]), sum(x["errors"] for x in hc["ours"]["rounds"])
    if not fl or not ou:
        first_errors = (hc["floor"]["errors"] + hc["ours"]["errors"])[:2]
        row(
            "9",
            f"HTTP, {n} clients: chat per call",
            "no calls",
            "no calls",
            "p50 <= 1.15x floor",
            False,
            f"errors: floor {errors[0]}, ours {errors[1]}: {first_errors}",
        )
        return rows
    f50, f99, o50, o99 = pct(fl, 50), pct(fl, 99), pct(ou, 50), pct(ou, 99)
    r50 = o50 / f50
    by_round = {name: split_rounds(hc[name]) for name in ("floor", "ours")}
    rounds = len(by_round["ours"])

    def p50_of(picked: list[Sequence[float]]) -> float:
        return pct([x for r in picked for x in r], 50)

    lo50, hi50 = rounds_interval(by_round["ours"], by_round["floor"], p50_of)
    row(
        "9",
        f"HTTP, {n} clients x {calls} chats at once (new session each): p50 / p99 per call ({len(ou)} calls)",
        f"floor {f50:.1f} / {f99:.1f} ms",
        f"{o50:.1f} / {o99:.1f} ms = p50 {r50:.2f}x (90 % interval {lo50:.2f}-{hi50:.2f}x over "
        f"{rounds} rounds), p99 {o99 / f99:.2f}x",
        "p50 <= 1.15x floor",
        r50 <= 1.15 and not any(errors),
        f"{r50 - 1.15:.2f}x ({o50 - 1.15 * f50:.1f} ms over 1.15x)"
        + (f"; errors: floor {errors[0]}, ours {errors[1]}" if any(errors) else ""),
        floor_stats=summary(fl),
        ours_stats=summary(ou),
        p50_ratio=r50,
        p50_ratio_interval=[lo50, hi50],
    )

    def rate(name: str) -> float:
        rounds = hc[name]["rounds"]
        return float(sum(x["calls"] for x in rounds) / sum(x["wall_s"] for x in rounds))

    def cpu_ms(name: str) -> float:
        rounds = hc[name]["rounds"]
        return float(sum(x["server_cpu_s"] for x in rounds) / sum(x["calls"] for x in rounds) * 1e3)

    fr, orate = rate("floor"), rate("ours")
    fc, oc = cpu_ms("floor"), cpu_ms("ours")
    walls = {name: [[x["wall_s"], x["calls"]] for x in hc[name]["rounds"]] for name in ("floor", "ours")}

    def rate_of(picked: list[Sequence[float]]) -> float:
        return sum(r[1] for r in picked) / sum(r[0] for r in picked)

    lot, hit = rounds_interval(walls["ours"], walls["floor"], rate_of)
    row(
        "9b",
        f"HTTP, {n} clients: throughput; server CPU per chat",
        f"floor {fr:.0f} chats/s; {fc:.2f} ms",
        f"{orate:.0f} chats/s ({orate / fr:.2f}x, 90 % interval {lot:.2f}-{hit:.2f}x); {oc:.2f} ms "
        f"({oc / fc:.2f}x)",
        f"throughput >= {THROUGHPUT_FLOOR:.1f}x floor",
        orate >= THROUGHPUT_FLOOR * fr and not any(errors),
        f"{orate / fr:.2f}x ({THROUGHPUT_FLOOR * fr - orate:.0f} chats/s short)"
        + (f"; errors: floor {errors[0]}, ours {errors[1]}" if any(errors) else ""),
        floor_chats_per_s=fr,
        ours_chats_per_s=orate,
        throughput_ratio_interval=[lot, hit],
        floor_cpu_ms_per_chat=fc,
        ours_cpu_ms_per_chat=oc,
    )

    if hc.get("ours_continue", {}).get("latency_ms"):
        co = hc["ours_continue"]["latency_ms"]
        c50, c99 = pct(co, 50), pct(co, 99)
        notes = {
            name: sum(x.get("notifications_received", 0) for x in hc[name]["rounds"])
            / max(1, sum(x["calls"] for x in hc[name]["rounds"]))
            for name in ("floor", "ours", "ours_continue")
        }
        row(
            "9c",
            f"HTTP, {n} clients, each continuing its own session: p50 / p99; CPU; "
            "notifications received per chat (new session / continuing)",
            f"floor {f50:.1f} / {f99:.1f} ms",
            f"{c50:.1f} / {c99:.1f} ms = p50 {c50 / f50:.2f}x; {rate('ours_continue'):.0f} chats/s; "
            f"{cpu_ms('ours_continue'):.2f} ms CPU; {notes['ours']:.1f} / {notes['ours_continue']:.1f}",
            "",
            None,
            "",
            ours_stats=summary(co),
            notifications_per_chat=notes,
        )

    th = res["two_hosts"]
    label = (
        f"chats/s, 1 Ollama host vs 2 (each 1 chat at a time, {th['latency_s'] * 1e3:.0f} ms a chat), "
        f"{th['clients']} clients x {th['calls_per_client']}"
    )
    if "rounds" not in th or "skipped" in th:
        row("10", label, "-", "skipped", ">= 1.8x", None, th.get("skipped", "not run"))
        return rows

    def hrate(name: str) -> float:
        rounds = th["rounds"][name]
        return float(sum(x["calls"] for x in rounds) / sum(x["wall_s"] for x in rounds))

    one, two = hrate("one_host"), hrate("two_hosts")
    split = [(x["chats_on_a"], x["chats_on_b"]) for x in th["rounds"]["two_hosts"]]
    herr = sum(len(x["errors"]) for rs in th["rounds"].values() for x in rs)
    ratio = two / one
    row(
        "10",
        label,
        f"1 host {one:.2f}/s (ideal {1 / th['latency_s']:.1f})",
        f"2 hosts {two:.2f}/s = {ratio:.2f}x; split A/B {', '.join(f'{a}/{b}' for a, b in split)}",
        ">= 1.8x",
        ratio >= 1.8 and herr == 0,
        f"{1.8 - ratio:.2f}x" + (f"; {herr} errors" if herr else ""),
        one_host_chats_per_s=one,
        two_hosts_chats_per_s=two,
        ratio=ratio,
    )
    return rows


LABELS = {"sqlite_1": "SQLite x1", "postgres_1": "PG x1", "postgres_2": "PG x2"}


def evaluate_replicas(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows 12, 12b, 12c (``replica_scenarios.bench_replicas``): information, but a chat that erred
    or a replica of ``postgres_2`` that served no chat is a miss (the replicas did not both work)."""
    rows: list[dict[str, Any]] = []
    row = row_adder(rows)
    n, calls = res["clients"], res["calls_per_client"]
    head = f"replicas, {n} clients x {calls} chats, fake {res['latency_s'] * 1e3:.0f} ms"
    if "skipped" in res or "new" not in res:
        row("12", head, "-", "skipped", "info", None, res.get("skipped", "not run"))
        return rows

    def rate(rounds: list[dict[str, Any]]) -> float:
        return float(sum(x["calls"] for x in rounds) / sum(x["wall_s"] for x in rounds))

    def per_chat_ms(rounds: list[dict[str, Any]], key: str) -> float:
        return float(sum(x[key] for x in rounds) / max(1, sum(x["calls"] for x in rounds)) * 1e3)

    for tid, mode, what in (
        ("12", "new", "new session each"),
        ("12b", "continue", "each continuing its own"),
    ):
        got = res[mode]
        base = got["sqlite_1"]
        b50, b99, brate = pct(base["latency_ms"], 50), pct(base["latency_ms"], 99), rate(base["rounds"])
        cells = []
        for variant in ("postgres_1", "postgres_2"):
            lat, r = got[variant]["latency_ms"], rate(got[variant]["rounds"])
            p50, p99 = pct(lat, 50), pct(lat, 99)
            cells.append(
                f"{LABELS[variant]} {p50:.1f} / {p99:.1f} ms, {r:.0f}/s ({p50 / b50:.2f}x, {r / brate:.2f}x)"
            )
        split = [x["chats_per_replica"] for x in got["postgres_2"]["rounds"]]
        errors = {v: sum(x["errors"] + x["failed_requests"] for x in got[v]["rounds"]) for v in got}
        idle = [i for i in range(2) if sum(s[i] for s in split) == 0]
        problems = [f"{LABELS[v]} {e} errors" for v, e in errors.items() if e]
        problems += [f"replica {'AB'[i]} of PG x2 served no chat" for i in idle]
        if mode == "continue" and "continued_sessions" in res:
            stored = res["continued_sessions"]
            want = res["warmup_calls"] + calls * res["rounds"]
            if stored["sessions"] != n or any(t != want for t in stored["turns"]):
                problems.append(f"PG x2 sessions hold {stored['turns']} turns, not {n} x {want}")
        a, b = sum(s[0] for s in split), sum(s[1] for s in split)
        row(
            tid,
            f"{head} ({what}): p50 / p99, chats/s (ratio to SQLite x1); PG x2 chats on A/B",
            f"SQLite x1 {b50:.1f} / {b99:.1f} ms, {brate:.0f}/s",
            "; ".join(cells) + f"; A/B {a}/{b}",
            "info; 0 errors, both replicas serve",
            False if problems else None,
            ", ".join(problems),
            **{
                v: {"stats": summary(got[v]["latency_ms"]), "chats_per_s": rate(got[v]["rounds"])}
                for v in LABELS
                if got[v]["latency_ms"]
            },
            chats_per_replica=[a, b],
            errors=errors,
        )
    every = {v: res["new"][v]["rounds"] + res["continue"][v]["rounds"] for v in LABELS}
    cpu = {v: per_chat_ms(every[v], "server_cpu_s") for v in LABELS}
    pg = {v: per_chat_ms(every[v], "postgres_cpu_s") for v in LABELS}
    proxy = {v: per_chat_ms(every[v], "proxy_cpu_s") for v in LABELS}

    def cell(v: str) -> str:
        total = cpu[v] + pg[v]
        return f"{LABELS[v]} {cpu[v]:.2f} + {pg[v]:.2f} = {total:.2f} ms ({total / cpu['sqlite_1']:.2f}x)"

    row(
        "12c",
        "replicas: CPU per chat, server(s) + PostgreSQL backends; the proxy's (12 and 12b together)",
        f"SQLite x1 {cpu['sqlite_1']:.2f} ms",
        f"{cell('postgres_1')}; {cell('postgres_2')}; "
        f"proxy {min(proxy.values()):.2f}-{max(proxy.values()):.2f} ms",
        "",
        None,
        "",
        server_cpu_ms_per_chat=cpu,
        postgres_cpu_ms_per_chat=pg,
        proxy_cpu_ms_per_chat=proxy,
    )
    return rows
