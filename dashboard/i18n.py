"""Every word the dashboard shows, in French (the default) and English (words.yaml), and how
numbers and durations read in each."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import yaml

from core.numbers import number as core_number

# Every word, key -> [French, English], in one data file: neither language can miss one.
WORDS: dict[str, list[str]] = yaml.safe_load(Path(__file__).with_name("words.yaml").read_text(encoding="utf-8"))
FR = {key: fr for key, (fr, _) in WORDS.items()}
EN = {key: en for key, (_, en) in WORDS.items()}

LANGUAGES = {"fr": ("Français", FR), "en": ("English", EN)}


def lang() -> str:
    return st.session_state.get("lang", "fr")


def localized(french: str | None, english: str) -> str:
    """The French text when French is chosen and there is one, else the English (data that comes
    in both languages: metric labels, alert messages, the engine's audit comments)."""
    return french if french and lang() == "fr" else english


def has(key: str) -> bool:
    """Whether `key` is a word of the dashboard (status and action words of the audit trail)."""
    return key in FR


def t(key: str, **kw) -> str:
    """The text for `key` in the chosen language (French by default)."""
    words = LANGUAGES[lang()][1]
    text = words.get(key) or FR.get(key) or key
    return text.format(**kw) if kw else text


def ago(seconds: float) -> str:
    """'8 s', '3 min', '2 h', '4 j' — short durations as people say them."""
    s = int(max(0, seconds))
    day = "j" if lang() == "fr" else "d"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} {day}"


def number(value: float | None, unit: str = "", digits: int | None = 1) -> str:
    """A number in the chosen language (19,4 °C; 100 000 cycles), by the one formatter."""
    return core_number(value, unit, lang=lang(), digits=digits)
