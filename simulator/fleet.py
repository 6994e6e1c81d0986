"""The simulated fleet: the assets the API lists, each with its signals, and the active faults."""

from __future__ import annotations

from datetime import datetime

import httpx

from simulator.signals import ActiveFault, AssetSignals

COUNTERS = ("run_hours", "door_cycles")


def discover(http: httpx.Client, *, sites: int | None = None, assets_per_type: int | None = None) -> list[dict]:
    """Assets from GET /sites and /sites/{id}/assets (optionally the first N sites, N per type)."""
    r = http.get("/sites")
    r.raise_for_status()
    site_list = sorted(r.json(), key=lambda s: s["code"])
    if sites is not None:
        site_list = site_list[:sites]
    assets = []
    for site in site_list:
        r = http.get(f"/sites/{site['id']}/assets")
        r.raise_for_status()
        per_type: dict[str, int] = {}
        for a in sorted(r.json(), key=lambda a: a["code"]):
            per_type[a["type"]] = per_type.get(a["type"], 0) + 1
            if assets_per_type is None or per_type[a["type"]] <= assets_per_type:
                assets.append({**a, "site_code": site["code"]})
    return assets


def fetch_faults(http: httpx.Client) -> dict[str, list[ActiveFault]]:
    """Active faults by asset code (GET /simulator/faults)."""
    r = http.get("/simulator/faults")
    r.raise_for_status()
    out: dict[str, list[ActiveFault]] = {}
    for f in r.json():
        out.setdefault(f["asset_code"], []).append(
            ActiveFault(f["fault"], f["intensity"], datetime.fromisoformat(f["started_at"]), f["ramp_s"],
                        datetime.fromisoformat(f["ends_at"]))
        )
    return out


class Fleet:
    """Signals of every asset; counters continue from the API's last values when given."""

    def __init__(self, assets: list[dict], *, seed: int, counters_from: str | None = "last_values"):
        self.assets = assets
        self.signals = {}
        for a in assets:
            counters = {}
            if counters_from:
                counters = {k: float(v) for k, v in (a.get(counters_from) or {}).items() if k in COUNTERS}
            self.signals[a["code"]] = AssetSignals(a["code"], a["type"], seed, counters=counters)

    def reading(self, asset: dict, ts: datetime, faults: list[ActiveFault]) -> dict | None:
        """The §7.1 payload of one asset at `ts` (None during a dropout)."""
        metrics = self.signals[asset["code"]].sample(ts, faults)
        if metrics is None:
            return None
        return {"site_code": asset["site_code"], "asset_code": asset["code"],
                "timestamp": ts.isoformat().replace("+00:00", "Z"), "metrics": metrics}

    def readings(self, ts: datetime, faults: dict[str, list[ActiveFault]]) -> list[dict]:
        out = []
        for a in self.assets:
            r = self.reading(a, ts, faults.get(a["code"], []))
            if r is not None:
                out.append(r)
        return out
