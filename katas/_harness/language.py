"""The learner's language: KATAS_LANG (en, zh), else the locale, else English."""

from __future__ import annotations

import locale
import os

LANGUAGES = ("en", "zh")
ENV = "KATAS_LANG"


def current() -> str:
    chosen = os.environ.get(ENV, "").strip().lower()
    if chosen:
        return "zh" if chosen.startswith("zh") else "en"
    for name in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = os.environ.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    try:
        code = locale.getlocale()[0] or ""
    except ValueError:
        code = ""
    return "zh" if code.lower().startswith("zh") else "en"
