"""What Grafana does to a panel's SQL before PostgreSQL sees it (Grafana cannot run here), so the
tests run the very statement a dashboard would send.

1. The browser replaces template variables (`$site`, `${site}`, `[[site]]`) and `$__interval` /
   `$__interval_ms`: a single-value variable is inserted bare (quotes doubled), a multi-value or
   "All" variable as a comma-separated list of quoted literals (the SQL data sources'
   interpolateVariable).
2. The PostgreSQL data source (pkg/tsdb/grafana-postgresql-datasource) replaces `$__interval`,
   `$__interval_ms`, `$__unixEpochFrom()`, `$__unixEpochTo()`, then every `$__macro(args)`:
   `$__timeFilter(c)` → `c BETWEEN '<from>' AND '<to>'` (RFC 3339, UTC), `$__timeFrom()`,
   `$__timeTo()`, `$__timeGroup(c, '5m')` → `floor(extract(epoch from c)/300)*300`,
   `$__timeGroupAlias` → the same `AS "time"`, `$__time(c)`, `$__timeEpoch(c)`; an unknown
   macro is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}

# Grafana's roundInterval (kbn): a raw interval in ms -> a round one
_ROUND = [(10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
          (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000),
          (90000, 60000), (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000),
          (1500000, 1200000), (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
          (16200000, 10800000), (24300000, 21600000), (64800000, 43200000), (129600000, 86400000)]


def parse_interval(text: str) -> timedelta:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|M|y)", text.strip().strip("'"))
    if not m:
        raise ValueError(f"error parsing interval {text}")
    return timedelta(seconds=int(m.group(1)) * UNITS[m.group(2)])


def format_interval(d: timedelta) -> str:
    """gtime.FormatInterval: the largest unit that divides it into a whole number (floored)."""
    ms = int(d.total_seconds() * 1000)
    for unit, size in (("y", 31536000000), ("w", 604800000), ("d", 86400000), ("h", 3600000), ("m", 60000),
                       ("s", 1000)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def panel_interval(start: datetime, end: datetime, *, width: int, min_interval: str) -> timedelta:
    """The interval Grafana computes for a panel: range / max data points (≈ the panel's width
    in pixels), rounded, never under the panel's (or data source's) minimum."""
    max_points = max(100, round(width / 24 * 1200))
    raw_ms = (end - start).total_seconds() * 1000 / max_points
    rounded = next((r for limit, r in _ROUND if raw_ms <= limit), 604800000)
    return max(timedelta(milliseconds=rounded), parse_interval(min_interval))


@dataclass
class Variable:
    name: str
    multi: bool
    include_all: bool


def sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def interpolate_variables(sql: str, variables: dict[str, Variable], values: dict[str, str | list[str]],
                          builtins: dict[str, str]) -> str:
    """Step 1, in the browser (templateSrv.replace with the SQL data sources' formatting)."""

    def replace(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            return m.group(0)  # not a variable ($__timeFilter …): left for the data source
        var, value = variables[name], values[name]
        if isinstance(value, list):
            return ",".join(sql_literal(v) for v in value)
        if var.multi or var.include_all:
            return sql_literal(value)
        return str(value).replace("'", "''")

    return VARIABLE.sub(replace, sql)


def rfc3339(t: datetime) -> str:
    """Go's time.RFC3339Nano of a UTC time: no trailing zeros in the fraction, "Z"."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}".rstrip("0") if t.microsecond else "") + "Z"


def expand_macros(sql: str, *, start: datetime, end: datetime, interval: timedelta) -> str:
    """Step 2, in the PostgreSQL data source (sqleng.Interpolate, then the macro engine)."""
    sql = sql.replace("$__interval_ms", str(int(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(end.timestamp())))
    frm, to = rfc3339(start), rfc3339(end)

    def macro(m: re.Match) -> str:
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
        if name == "__timeGroup" and sql[m.end():m.end() + 1] == ",":
            name = "__timeGroupAlias"  # Grafana's pre-5.3 compatibility rule
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{frm}' AND '{to}'"
        if name == "__timeFrom":
            return f"'{frm}'"
        if name == "__timeTo":
            return f"'{to}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) < 2:
                raise ValueError(f"macro {name} needs time column and interval")
            seconds = parse_interval(args[1]).total_seconds()
            s = f"{seconds:g}"
            expr = f"floor(extract(epoch from {args[0]})/{s})*{s}"
            return expr + (' AS "time"' if name == "__timeGroupAlias" else "")
        if name == "__unixEpochFilter":
            return f"{args[0]} >= {int(start.timestamp())} AND {args[0]} <= {int(end.timestamp())}"
        raise ValueError(f"unknown macro {name!r}")

    return MACRO.sub(macro, sql)


def grafana_sql(sql: str, *, variables: dict[str, Variable], values: dict, start: datetime, end: datetime,
                interval: timedelta) -> str:
    """The statement Grafana sends for a panel's rawSql."""
    builtins = {"__interval": format_interval(interval), "__interval_ms": str(int(interval.total_seconds() * 1000))}
    return expand_macros(interpolate_variables(sql, variables, values, builtins), start=start, end=end,
                         interval=interval)
