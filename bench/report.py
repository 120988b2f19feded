"""The report: ``bench/results/<date>.md`` for people, ``<date>.json`` with every figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.targets import (
    CONTENDED_CORES,
    MODES,
    PG_TARGET,
    databases_of,
    derive,
    evaluate,
    label,
    run_of,
    targets_of,
)


def free_stem(directory: Path, date: str) -> str:
    """``<date>``, or ``<date>-2``, ``-3``… when a report for the date exists."""
    stem, n = date, 1
    while (directory / f"{stem}.md").exists() or (directory / f"{stem}.json").exists():
        n += 1
        stem = f"{date}-{n}"
    return stem


def write(results: dict[str, Any], directory: Path, stem: str) -> tuple[Path, Path]:
    derived = derive(results)
    checks = evaluate(results, derived)
    results = {**results, "derived": derived, "targets": checks}
    md, js = directory / f"{stem}.md", directory / f"{stem}.json"
    js.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md.write_text(render(results))
    return md, js


def _ms(us: float | None) -> str:
    return "n/a" if us is None else f"{us / 1000:.2f}"


def _pf(ok: bool | None, info: bool = False) -> str:
    if info:  # not one of the targets: PASS when it meets the threshold, never FAIL
        return "info, **PASS**" if ok else "info (threshold not met)"
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def _database(r: dict[str, Any]) -> str:
    databases = databases_of(r)
    version = r["meta"]["versions"].get("postgresql")
    pg = f"PostgreSQL {version}" if version else "PostgreSQL"
    if PG_TARGET in databases:
        return (
            f"- Database: gridgate on SQLite (the issue's targets, soak, profile) and "
            f"**gridgate (PostgreSQL)** on {pg} (a fresh database for the run, on the same "
            "machine) in the load and TTFB runs; its server CPU includes the PostgreSQL "
            "server's processes"
        )
    if databases.get("gridgate") == "postgresql":
        return (
            f"- Database: **gridgate on {pg}** (`--database postgresql`: a fresh database "
            "for the run, on the same machine) in every run; its server CPU includes the "
            "PostgreSQL server's processes"
        )
    return "- Database: gridgate on SQLite"


def _repeated(runs: list[dict[str, Any]]) -> str:
    repeated = [
        f"{run['target']}/{run['mode']}@{run['connections']} ×{len(run['discarded']) + 1}"
        for run in runs
        if run.get("discarded")
    ]
    return f"; repeated here: {', '.join(repeated)}" if repeated else "; none was repeated"


def _source(git: dict[str, Any]) -> str:
    if git.get("exported"):
        return f"the commit's src/ exported (`--rev {git['rev']}`), not the working tree"
    if not git["src_dirty"]:
        return "src/ clean"
    changes = git["src_changes"]
    listed = ", ".join(changes[:8]) + ("…" if len(changes) > 8 else "")
    digest = git.get("src_diff_sha256") or ""
    return (
        f"**working tree of src/ dirty** ({len(changes)} paths: {listed}; `git diff HEAD -- src` "
        f"sha256 {digest[:12]}, {git.get('src_diff_lines', 0)} lines), copied at start and run "
        "from the copy"
    )


def _summary(r: dict[str, Any]) -> list[str]:
    """The commit's cost in a few lines: each gridgate target's throughput at the high
    connection count as a share of the bare proxy's, and CPU per request beside the bare
    proxy's (what every change to the request path quotes, A against B)."""
    d = r["derived"]
    high = d["high_connections"]
    lines = ["## In short", ""]
    for target in (t for t in targets_of(r) if t not in ("direct", "bare")):
        parts = []
        for mode in MODES:
            gw, bare = run_of(r, target, mode, high), run_of(r, "bare", mode, high)
            cpu = d["cpu"]
            gw_cpu = cpu[f"{target}/{mode}@{high}"]["server_cpu_us_per_request"]
            bare_cpu = cpu[f"bare/{mode}@{high}"]["server_cpu_us_per_request"]
            share = gw["rps"] / bare["rps"] if bare["rps"] else 0.0
            parts.append(
                f"{mode} {share:.1%} of bare ({gw['rps']:,.0f} / {bare['rps']:,.0f} req/s), "
                f"CPU {gw_cpu} µs per request (bare {bare_cpu})"
            )
        lines.append(f"- **{label(r, target)}** at {high} connections: " + "; ".join(parts))
    checks = r.get("targets", [])
    counted = [c for c in checks if not c.get("info")]
    passed = sum(1 for c in counted if c["pass"])
    if counted:
        lines.append(f"- Targets: {passed} of {len(counted)} met (the table at the end)")
    return [*lines, ""]


def render(r: dict[str, Any]) -> str:
    meta, d = r["meta"], r["derived"]
    m, v, git = meta["machine"], meta["versions"], meta["git"]
    low, high = d["low_connections"], d["high_connections"]
    targets = targets_of(r)
    lines = [
        f"# gridgate benchmark — {meta['started']}",
        "",
        f"Command: `{meta['command']}` ({meta['wall_seconds']} s wall). "
        f"Runs of {meta['settings']['duration_s']:g} s, wrk with 1 thread, "
        f"{meta['settings']['workers']} server processes per proxy (one per core), "
        f"nginx with {meta['settings']['nginx_workers']} worker; all on 127.0.0.1."
        + (" **Quick run** (short runs: indicative only)." if meta["settings"]["quick"] else "")
        + (
            " **gridgate on the Messages surface** (`POST /v1/messages`, Anthropic bodies, every "
            "request and answer translated to and from the OpenAI-wire upstream); direct and "
            "bare get the chat-completions bodies."
            if meta["settings"].get("surface") == "messages"
            else ""
        )
        + (
            " **gridgate on the Responses surface** (`POST /v1/responses`, Responses bodies with "
            "`store: false`, every request and answer translated to and from the OpenAI-wire "
            "upstream); direct and bare get the chat-completions bodies."
            if meta["settings"].get("surface") == "responses"
            else ""
        )
        + {
            "redis": " Rate limits on the key, checked on Redis (one Lua round trip per "
            "request; set too high to refuse anything).",
            "memory": " Rate limits on the key, checked in each worker's memory (set too high "
            "to refuse anything).",
            "auto": " Rate limits on the key (set too high to refuse anything), checked in each "
            "worker's memory on SQLite and on Redis (one Lua round trip per request) on "
            "PostgreSQL.",
            "off": " No rate limits.",
        }.get(meta["settings"].get("limits", ""), "")
        + (
            f" `auth.cache_seconds = {meta['settings']['auth_cache_seconds']:g}` for this run."
            if meta["settings"].get("auth_cache_seconds") is not None
            else ""
        ),
        "",
        f"- Machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['memory_gib']} GiB, "
        f"kernel {m['kernel']}, load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_at_start'])}",
        f"- Versions: Python {v['python']}, aiohttp {v['aiohttp']}, msgspec {v['msgspec']}, "
        f"uvloop {v['uvloop']}, nginx {v['nginx']}, wrk {v['wrk']}, py-spy {v['py-spy']}",
        f"- gridgate {v['gridgate']} at `{git['commit'][:12]}` ({git['subject']}); " + _source(git),
        _database(r),
        "",
        *_summary(r),
        "## Throughput and latency",
        "",
        "Latency is wrk's, per whole response (a streamed answer to its last byte), in ms.",
        "",
        "| scenario | target | req/s | p50 | p90 | p99 | errors | server CPU µs/req | "
        "other load (cores) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        for conns in meta["settings"]["connections"]:
            for t in targets:
                run = run_of(r, t, mode, conns)
                lat = run["latency_us"]
                cpu = d["cpu"][f"{t}/{mode}@{conns}"]
                err = f"**{run['errors']}**" if run["errors"] else "0"
                other = cpu["other_cores"]
                mark = " ⚠" if other > CONTENDED_CORES else ""
                server = f"{cpu['server_cpu_us_per_request']}"
                if cpu.get("database_cpu_s") and run["requests"]:
                    server += f" (db {cpu['database_cpu_s'] * 1e6 / run['requests']:.1f})"
                lines.append(
                    f"| {mode}@{conns} | {label(r, t)} | {run['rps']:,.0f} | {_ms(lat['p50'])} | "
                    f"{_ms(lat['p90'])} | {_ms(lat['p99'])} | {err} | "
                    f"{server} | {other:.2f}{mark} |"
                )
    lines += [
        "",
        "Server CPU is the target's own processes (nginx for direct; for gridgate on "
        "PostgreSQL plus the PostgreSQL server's, shown as *db*). *Other load* is the CPU "
        "the rest of the machine burnt during the run (neither the servers nor wrk), in cores "
        f"of the {m['nproc']}: a noisy neighbour shows there, and ⚠ marks runs above "
        f"{CONTENDED_CORES} core — their figures are disturbed. A disturbed run is repeated "
        f"(up to {meta['settings'].get('retries', 0)} times, after waiting for a quiet "
        "machine) and the least disturbed attempt kept" + _repeated(r["runs"]) + ".",
        "",
        f"## Ratios at {high} connections",
        "",
        "| mode | gridgate / bare | gridgate / direct | bare / direct | direct / gridgate | "
        "gridgate / popular gateway |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        x = d["ratios_high"][mode]
        lines.append(
            f"| {mode} | {x['gridgate_over_bare']:.1%} | {x['gridgate_over_direct']:.1%} | "
            f"{x['bare_over_direct']:.1%} | {x['direct_over_gridgate']:.1f}× | "
            f"{x['gridgate_over_popular']:.1f}× |"
        )
    if PG_TARGET in targets:
        lines += [
            "",
            "gridgate (PostgreSQL):",
            "",
            "| mode | gridgate (PostgreSQL) / bare | gridgate (PostgreSQL) / direct | "
            "direct / gridgate (PostgreSQL) | gridgate (PostgreSQL) / popular gateway | "
            "gridgate (PostgreSQL) / gridgate (SQLite) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for mode in MODES:
            x = d["ratios_high"][mode]
            lines.append(
                f"| {mode} | {x['gridgate_pg_over_bare']:.1%} | "
                f"{x['gridgate_pg_over_direct']:.1%} | {x['direct_over_gridgate_pg']:.1f}× | "
                f"{x['gridgate_pg_over_popular']:.1f}× | {x['gridgate_pg_over_gridgate']:.1%} |"
            )
    lines += [
        "",
        f"## Added latency at {low} connection (vs direct)",
        "",
        "| | p50 added | p99 added |",
        "|---|---:|---:|",
    ]
    for key, added in d["added_latency_low"].items():
        target, mode = key.split("/")
        lines.append(
            f"| {label(r, target)}/{mode} | {added['p50_ms']:+.3f} ms | {added['p99_ms']:+.3f} ms |"
        )
    if "ttfb" in r:
        lines += [
            "",
            "## Streaming time to first byte (1 connection, sequential)",
            "",
            "Time from sending the request to the first body chunk (aiohttp client).",
            "",
            "| target | requests | p50 | p90 | p99 | added p50 | added p99 | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for t in targets:
            s = r["ttfb"][t]
            add = d.get("ttfb_added", {}).get(t)
            added = (f"{add['p50_ms']:+.3f} ms", f"{add['p99_ms']:+.3f} ms") if add else ("—", "—")
            lines.append(
                f"| {label(r, t)} | {s['requests']} | {_ms(s['p50_us'])} | {_ms(s['p90_us'])} | "
                f"{_ms(s['p99_us'])} | {added[0]} | {added[1]} | {s['errors']} |"
            )
    lines += [
        "",
        "## Memory: peak RSS (VmHWM) per process over the whole run",
        "",
        "| target | process | pid | peak MB |",
        "|---|---|---:|---:|",
    ]
    for name, rows in d["memory_mb"].items():
        for row in rows:
            lines.append(f"| {label(r, name)} | {row['role']} | {row['pid']} | {row['peak_mb']} |")
    soak, soak_d = r.get("soak"), d.get("soak")
    if soak and soak_d:
        run = soak["run"]
        lines += [
            "",
            f"## Soak: gridgate, {soak['connections']} connections, {soak['mix']}, "
            f"{soak['seconds']:g} s",
            "",
            f"{run['rps']:,.0f} req/s, p50 {_ms(run['latency_us']['p50'])} ms, p99 "
            f"{_ms(run['latency_us']['p99'])} ms, errors {run['errors']}, other load "
            f"{run.get('other_cores', 0):.2f} cores. RSS (VmRSS) at "
            f"t={soak_d['reference_t_s']:g} s and at the end (t={soak_d['end_t_s']:g} s):",
            "",
            "| process | pid | RSS at reference MB | RSS at end MB | growth |",
            "|---|---:|---:|---:|---:|",
        ]
        for p in soak_d["processes"]:
            lines.append(
                f"| {p['role']} | {p['pid']} | {p['ref_mb']} | {p['end_mb']} | {p['growth']:+.1%} |"
            )
        lines += ["", f"Flat (every process < 10% growth): {'yes' if soak_d['flat'] else 'NO'}."]
    for key, name in (("ledger", "gridgate"), ("ledger_pg", PG_TARGET)):
        ledger, lc = r.get(key), d.get(key)
        if not ledger or not lc:
            continue
        database = "PostgreSQL" if ledger.get("database") == "postgresql" else "SQLite"
        lines += [
            "",
            f"## Ledger sanity: {label(r, name)} (read from {database} after gridgate shut "
            "down gracefully)",
            "",
            f"- Usage records: {ledger['usage_records']}; 2xx answers counted by the clients: "
            f"{ledger['ok_answers']} (difference {lc['records_minus_ok']:+d}; wrk leaves at "
            f"most {ledger['max_in_flight_at_run_ends']} requests in flight across its runs, "
            "which gridgate records but wrk does not count).",
            "- By outcome: "
            + ", ".join(
                f"{o['outcome']}/{o['status']}/{'stream' if o['stream'] else 'plain'} {o['count']}"
                for o in ledger["usage_by_outcome"]
            ),
            f"- Balance {ledger['balance_nanos']:,} nanos (≥ 0: {lc['balance_non_negative']}; "
            f"= Σ ledger rows: {lc['balance_equals_ledger_sum']}); holds by status "
            f"{ledger['holds_by_status']}.",
            f"- Charged (credit − balance) {lc['charged_nanos']:,} nanos; Σ usage-record costs "
            f"{ledger['recorded_cost_nanos']:,} ({ledger['billed_records']} billed records); "
            f"difference {lc['charged_minus_recorded_nanos']:+,} nanos. Holds no usage record "
            f"points at: {ledger['holds_without_record']} (charged "
            f"{ledger['holds_without_record_charged_nanos']:,} nanos).",
        ]
    logs = r.get("logs") or {}
    if any(entry["tracebacks"] or entry["error_lines"] for entry in logs.values()):
        lines += ["", "## Errors logged by the servers", ""]
        for name, entry in logs.items():
            if not (entry["tracebacks"] or entry["error_lines"]):
                continue
            lines.append(
                f"- {name}: {entry['tracebacks']} tracebacks, {entry['error_lines']} ERROR lines"
            )
            for text, count in entry["exceptions"].items():
                lines.append(f"  - {count}× `{text}`")
    profile = r.get("profile") or {}
    if profile:
        lines += ["", "## Profile (py-spy, gridgate serve and its workers, 250 Hz)", ""]
        for mode, entry in profile.items():
            if entry.get("svg"):
                run = entry.get("run") or {}
                note = (
                    f" (profiled run: {run['rps']:,.0f} req/s, slowed by sampling)" if run else ""
                )
                lines.append(f"- {mode}@{high}: [{entry['svg']}]({entry['svg']}){note}")
                summary = entry.get("summary") or {}
                for title, key, n in (
                    ("self time by function", "top_self", 12),
                    ("self time by file", "top_files", 8),
                    ("inclusive time of gridgate functions", "gridgate_inclusive", 12),
                ):
                    rows = summary.get(key, [])[:n]
                    if rows:
                        lines.append(
                            f"  - {title}: "
                            + "; ".join(f"{row['share']:.1%} `{row['frame']}`" for row in rows)
                        )
            else:
                lines.append(f"- {mode}: no flame graph — {entry.get('error')}")
    if d["errors"]:
        lines += ["", "## Runs with errors", ""] + [f"- {e}" for e in d["errors"]]
    lines += [
        "",
        "## Targets",
        "",
        "Issue 17's targets are gridgate's on SQLite"
        + (
            " (here on PostgreSQL: `--database postgresql`)"
            if databases_of(r).get("gridgate") == "postgresql"
            else ""
        )
        + (
            ", and gridgate (PostgreSQL)'s throughput against the bare proxy and against "
            "SQLite's in the same run; rows marked *info* are for information"
            if PG_TARGET in targets
            else "; rows marked *info* are for information"
        )
        + ".",
        "",
        "| target | measured | result |",
        "|---|---|---|",
    ]
    for c in r["targets"]:
        lines.append(
            f"| {c['target']} | {c['measured']} | {_pf(c['pass'], c.get('info', False))} |"
        )
    lines.append("")
    return "\n".join(lines)
