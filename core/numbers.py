"""The one number formatter: alert messages (engine) and every page (dashboard) write numbers
through it, so a value reads the same everywhere."""

from __future__ import annotations

THOUSANDS = {"fr": "\u202f", "en": ","}  # 100 000 cycles (narrow no-break space) · 100,000 cycles
DECIMAL = {"fr": ",", "en": "."}


def number(value: float | None, unit: str = "", *, lang: str = "en", digits: int | None = None) -> str:
    """19,4 °C / 19.4 °C. From 1,000 on, whole numbers with a thousands separator; below, `digits`
    decimals, or with digits=None up to two with the trailing zeros dropped (21.3, 20.01 just past
    a threshold of 20, 500). No value: "—"."""
    if value is None:
        return "—"
    if abs(value) >= 1000:
        text = f"{value:,.0f}".replace(",", THOUSANDS[lang])
    else:
        text = f"{value:.{2 if digits is None else digits}f}"
        if digits is None and "." in text:
            text = text.rstrip("0").rstrip(".")
        text = text.replace(".", DECIMAL[lang])
    return f"{text} {unit}".strip()
