"""Rows 1-8 and 11 of the report (the stdio scenarios), from the samples ``run.py`` collected."""

from __future__ import annotations

import statistics
from typing import Any

from harness import Config, paired, pct, ratio_interval, summary
from report import row_adder

COLD_START_LIMIT = 1.05
"""Row 1's target: spawn to the ``initialize`` answer within 1.05x the floor's (issue 21)."""


def evaluate(
    cold: dict[str, Any], res: dict[str, Any], cfg: Config, scen: dict[str, Any], peer: Any
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    row = row_adder(rows)

    # 1. cold start
    f, o = pct(cold["floor"]["init_ms"], 50), pct(cold["ours"]["init_ms"], 50)
    limit = f * COLD_START_LIMIT
    row(
        "1",
        "cold start: spawn -> initialize answer (median)",
        f"floor {f:.0f} ms",
        f"{o:.0f} ms ({(o / f - 1) * 100:+.1f}%)",
        f"<= {COLD_START_LIMIT:.2f}x floor",
        o <= limit,
        f"{o - limit:.0f} ms = {(o / f - COLD_START_LIMIT) * 100:.1f} pts (limit {limit:.0f} ms)",
        floor_ms=f,
        ours_ms=o,
        floor_stats=summary(cold["floor"]["init_ms"]),
        ours_stats=summary(cold["ours"]["init_ms"]),
    )
    fm, om = min(cold["floor"]["init_ms"]), min(cold["ours"]["init_ms"])
    ratio = paired(cold["ours"]["init_ms"], cold["floor"]["init_ms"], lambda x, y: x / y)
    best = f"{om:.0f} ms ({(om / fm - 1) * 100:+.1f}%); paired ratio {ratio:.2f}x"
    row("1b", "cold start: best of runs; median paired ratio", f"floor {fm:.0f} ms", best, "", None, "")
    if "tools_ms" in cold["ours"]:  # results written before this row existed have no tools_ms
        ft, ot = pct(cold["floor"]["tools_ms"], 50), pct(cold["ours"]["tools_ms"], 50)
        listed = paired(cold["ours"]["tools_ms"], cold["floor"]["tools_ms"], lambda x, y: x / y)
        row(
            "1d",
            "spawn -> tools/list answer, as a host asks next (median)",
            f"floor {ft:.0f} ms (1 tool)",
            f"{ot:.0f} ms = {ot / ft:.2f}x (paired {listed:.2f}x; 12 tools)",
            "",
            None,
            "",
        )
    fe, oe = pct(cold["floor"]["exit_ms"], 50), pct(cold["ours"]["exit_ms"], 50)
    row("1c", "exit after stdin EOF (median)", f"floor {fe:.0f} ms", f"{oe:.0f} ms", "", None, "")

    # 2. per-call overhead
    pc = res["per_call"]
    fp50, fp99 = pct(pc["floor"], 50), pct(pc["floor"], 99)
    for name, label, judged in (
        ("ours_new_session", "per call, new session each call", True),
        ("ours_continue", "per call, continuing one session (8-turn window)", False),
    ):
        p50, p99 = pct(pc[name], 50), pct(pc[name], 99)
        delta = p50 - fp50
        pdelta = paired(pc[name], pc["floor"], lambda x, y: x - y)
        row(
            "2" if judged else "2b",
            f"{label}: p50 / p99 over {len(pc[name])} calls",
            f"floor {fp50:.2f} / {fp99:.2f} ms",
            f"{p50:.2f} / {p99:.2f} ms (p50 {delta:+.2f}, paired {pdelta:+.2f} ms)",
            "p50 <= floor +1 ms",
            (delta <= 1.0) if judged else None,
            f"{delta - 1.0:.2f} ms (p50 {delta:.2f} ms over the floor)"
            if judged
            else f"{'within' if delta <= 1.0 else 'over'} the 1 ms target by {abs(delta - 1.0):.2f} ms",
            paired_delta_ms=pdelta,
            floor_stats=summary(pc["floor"]),
            ours_stats=summary(pc[name]),
        )

    # 2c. the same calls as a ratio to the floor (goal <= 1.15x), and the tail
    ours = pc["ours_new_session"]
    p50r = pct(ours, 50) / fp50
    pr = paired(ours, pc["floor"], lambda x, y: x / y)
    p99r = pct(ours, 99) / fp99
    p99lo, p99hi = ratio_interval(ours, pc["floor"], 99)
    row(
        "2c",
        "chat (new session) / floor: p50 ratio; p99 ratio",
        f"floor p50 {fp50:.2f}, p99 {fp99:.2f} ms",
        f"p50 {p50r:.2f}x (paired {pr:.2f}x); p99 {pct(ours, 99):.2f} ms = {p99r:.2f}x "
        f"(90 % interval {p99lo:.2f}-{p99hi:.2f}x)",
        "p50 <= 1.15x floor",
        p50r <= 1.15,
        f"{p50r - 1.15:.2f}x ({pct(ours, 50) - 1.15 * fp50:.2f} ms over 1.15x)",
        p50_ratio=p50r,
        paired_ratio=pr,
        p99_ratio=p99r,
        p99_ratio_interval=[p99lo, p99hi],
    )

    # 2d. the TypeScript peer, npm ollama-mcp (ollama_chat), in the same interleave
    if "peer_ollama_mcp" in pc:
        pe = pc["peer_ollama_mcp"]
        op99, pp99 = pct(ours, 99), pct(pe, 99)
        lo, hi = ratio_interval(ours, pe, 99)
        row(
            "2d",
            f"chat p50 / p99 vs npm ollama-mcp {peer.version} ollama_chat ({len(pe)} calls)",
            f"peer {pct(pe, 50):.2f} / {pp99:.2f} ms",
            f"{pct(ours, 50):.2f} / {op99:.2f} ms (p99 {op99 / pp99:.2f}x the peer's; "
            f"90 % interval {lo:.2f}-{hi:.2f}x)",
            "p99 <= peer p99",
            op99 <= pp99,
            f"{op99 - pp99:.2f} ms",
            peer_stats=summary(pe),
            ours_stats=summary(ours),
            p99_ratio=op99 / pp99,
            p99_ratio_interval=[lo, hi],
        )
    else:
        row("2d", "chat p99 vs npm ollama-mcp", "not run", str(peer), "p99 <= peer p99", None, "")

    # 3. concurrency
    cc = res["concurrency"]
    n = cfg.conc_n
    o1, on = pct(cc["ours_1"], 50), pct(cc[f"ours_{n}"], 50)
    f1, fn = pct(cc["floor_1"], 50), pct(cc[f"floor_{n}"], 50)
    ratio = on / o1
    row(
        "3",
        f"{n} concurrent calls ({n} sessions) / 1 call, {cfg.conc_latency_s * 1e3:.0f} ms model (medians)",
        f"floor {fn:.0f}/{f1:.0f} ms = {fn / f1:.2f}x",
        f"{on:.0f}/{o1:.0f} ms = {ratio:.2f}x",
        "< 1.3x",
        ratio < 1.3,
        f"{ratio - 1.3:.2f}x ({on - 1.3 * o1:.0f} ms over)",
        ours_1=summary(cc["ours_1"]),
        ours_n=summary(cc[f"ours_{n}"]),
        floor_1=summary(cc["floor_1"]),
        floor_n=summary(cc[f"floor_{n}"]),
    )

    # 4. progress latency
    pg = res["progress"]["first_token_to_progress_ms"]
    p50, p99 = pct(pg, 50), pct(pg, 99)
    row(
        "4",
        f"fake's first token -> client progress, p50 / p99 ({len(pg)} calls)",
        "-",
        f"{p50:.2f} / {p99:.2f} ms",
        "p50 < 10 ms",
        p50 < 10.0,
        f"{p50 - 10.0:.2f} ms",
        ours_stats=summary(pg),
    )

    # 5. big store
    st = res["store"]
    base = pct(st["one_session_store"], 50)
    for key, label, tid in (
        ("big_store_same_session", "same session", "5"),
        ("big_store_rotating", "a different session each call", "5b"),
    ):
        v = pct(st[key], 50)
        row(
            tid,
            f"chat in a {cfg.store_sessions}x{cfg.store_turns} store, {label} (p50)",
            f"1-session store {base:.2f} ms",
            f"{v:.2f} ms ({(v / base - 1) * 100:+.1f}%)",
            "<= +10%",
            v <= base * 1.10,
            f"{v - base * 1.10:.2f} ms ({(v / base - 1) * 100 - 10:.1f} points)",
            reference_stats=summary(st["one_session_store"]),
            ours_stats=summary(st[key]),
        )

    # 6. RSS
    fr, orr = pct(cold["floor"]["rss_mib"], 50), pct(cold["ours"]["rss_mib"], 50)
    row(
        "6",
        "idle RSS after initialize (median)",
        f"floor {fr:.1f} MiB",
        f"{orr:.1f} MiB ({orr - fr:+.1f} MiB)",
        "<= floor +10 MiB",
        orr - fr <= 10.0,
        f"{orr - fr - 10.0:.1f} MiB",
    )

    # 7. long answer through a host with a 3 s limit
    la = scen["long_answer"]
    gen, host, dl = la["generation_s"], la["host_timeout_s"], la["answer_deadline_s"]
    for name, tid, label, judged in (
        ("deadline", "7", f"deadline {dl:g} s", True),
        ("baseline_no_deadline", "7b", "deadline 0 (wait for the whole answer)", False),
    ):
        smp = la["samples"][name]
        frac = min(x["delivered_fraction"] for x in smp)
        calls = [x["calls"] for x in smp]
        total = [x["total_s"] for x in smp]
        timeouts = sum(x["timeouts"] for x in smp)
        longest = max(max(x["call_ms"]) for x in smp) / 1e3
        stopped = la["fake_hangups"][name]
        note = f"longest call {longest:.2f} s"
        if not judged:
            note += f"; generations the server stopped: {stopped} of {len(smp)}"
        row(
            tid,
            f"{gen:.0f} s answer, host limit {host:g} s, {label}: "
            f"delivered; calls; total (median of {len(smp)})",
            "-",
            f"{frac * 100:.0f}% (worst run); {pct(calls, 50):.0f} calls; {pct(total, 50):.1f} s; "
            f"{timeouts} host timeouts; {note}",
            "100% delivered" if judged else "",
            (frac == 1.0 and all(x["complete"] for x in smp)) if judged else None,
            f"{(1 - frac) * 100:.0f}% of the answer lost" if judged else "",
            runs=smp,
        )

    # 8. first chat after start, 5 s model load
    ml = scen["model_load"]
    waited, unwaited = ml["samples"]["waited"], ml["samples"]["unwaited"]
    warm = [statistics.median(x["warm_ms"]) for x in waited]
    ratios = [x["first_chat_ms"] / w for x, w in zip(waited, warm, strict=True)]
    first = [x["first_chat_ms"] for x in waited]
    r = pct(ratios, 50)
    row(
        "8",
        f"first chat after the preload ({ml['load_delay_s']:g} s load) / warm chat (median of {len(ratios)})",
        f"warm {pct(warm, 50):.0f} ms",
        f"{pct(first, 50):.0f} ms = {r:.2f}x (worst {max(ratios):.2f}x)",
        "<= 1.2x warm",
        r <= 1.2,
        f"{r - 1.2:.2f}x",
        ratios=ratios,
    )
    uf = [x["first_chat_ms"] for x in unwaited]
    us = [x["first_chat_after_spawn_ms"] for x in unwaited]
    ui = [x["initialize_ms"] for x in unwaited]
    pre = [x["preload_done_after_spawn_ms"] for x in waited]
    row(
        "8b",
        "first chat right after initialize: call time; spawn -> answer (medians)",
        f"initialize {pct(ui, 50):.0f} ms; preload done {pct(pre, 50) / 1e3:.2f} s after spawn",
        f"{pct(uf, 50) / 1e3:.2f} s; {pct(us, 50) / 1e3:.2f} s after spawn",
        "",
        None,
        f"{pct(uf, 50) / pct(warm, 50):.1f}x warm; loads per server: "
        + ",".join(str(x["loads"]) for x in unwaited + waited),
    )
    return rows


def evaluate_models(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows 11 and 11b (``models_scenarios.bench_models``): 16 chats over two models vs the floor."""
    rows: list[dict[str, Any]] = []
    row = row_adder(rows)
    n, models = res["chats"], len(res["models"])

    def at_fake(stats: dict[str, Any]) -> str:
        per_model = "/".join(str(v) for v in stats["peak_generating"].values())
        return f"{per_model} per model, {stats['peak_models']} models, {stats['peak_open']} requests open"

    for tid, part in (("11", "serial"), ("11b", "parallel")):
        got = res[part]
        fl, ou = got["floor"], got["ours"]
        fw, ow = pct(fl["wall_ms"], 50), pct(ou["wall_ms"], 50)
        ratio = ow / fw
        pr = paired(ou["wall_ms"], fl["wall_ms"], lambda x, y: x / y)
        ours_mp = got["ours_max_parallel"]
        if ours_mp == "default":
            ours_mp = f"default {res['ours_default_max_parallel']}"
        row(
            tid,
            f"{n} chats at once over {models} models, fake {got['fake_num_parallel']} chat(s) per model at "
            f"once, ours --max-parallel {ours_mp}: wall (median of {len(ou['wall_ms'])}); chat p50 / p99; "
            "most at once at the fake",
            f"floor {fw:.0f} ms; {pct(fl['chat_ms'], 50):.0f} / {pct(fl['chat_ms'], 99):.0f} ms; "
            f"{at_fake(fl['fake'])}",
            f"{ow:.0f} ms = {ratio:.3f}x (paired {pr:.3f}x); {pct(ou['chat_ms'], 50):.0f} / "
            f"{pct(ou['chat_ms'], 99):.0f} ms; {at_fake(ou['fake'])}",
            "wall <= 1.10x floor",
            ratio <= 1.10,
            f"{ratio - 1.10:.3f}x ({ow - 1.10 * fw:.0f} ms over 1.10x)",
            wall_ratio=ratio,
            paired_ratio=pr,
            floor_wall=summary(fl["wall_ms"]),
            ours_wall=summary(ou["wall_ms"]),
            floor_chat=summary(fl["chat_ms"]),
            ours_chat=summary(ou["chat_ms"]),
            floor_fake=fl["fake"],
            ours_fake=ou["fake"],
        )
    return rows
