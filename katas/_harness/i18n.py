"""The kata tests' teaching messages in the learner's language, through gettext catalogs.

A test marks a message with `_()` and fills it with named fields afterwards:

    from katas._harness.i18n import _
    fail(_("Called {call}. It returned {got}.").format(call=call, got=show(got)))

Never an f-string inside `_()`: the catalog's key is the literal text. Catalogs are one
gettext domain per kata (its folder name) plus `harness`, under
katas/_harness/locale/<lang>/LC_MESSAGES/<domain>.po, compiled to .mo by
`pybabel compile` (see tests/test_catalogs.py, which keeps them complete and in step).
English is the source language: with KATAS_LANG=en (or no catalog) `_` returns its input.
"""

from __future__ import annotations

import gettext
from functools import cache
from pathlib import Path

from .language import current

LOCALE_DIR = Path(__file__).resolve().parent / "locale"


@cache
def _catalog(language: str) -> gettext.NullTranslations:
    """Every domain's compiled catalog for `language`, chained: one lookup finds any message."""
    chain: gettext.NullTranslations = gettext.NullTranslations()
    folder = LOCALE_DIR / language / "LC_MESSAGES"
    for mo in sorted(folder.glob("*.mo")) if folder.is_dir() else ():
        with mo.open("rb") as handle:
            try:
                chain.add_fallback(gettext.GNUTranslations(handle))
            except (OSError, ValueError):  # a corrupt catalog falls back to English, never crashes a run
                continue
    return chain


def _(message: str) -> str:
    language = current()
    if language == "en":
        return message
    return _catalog(language).gettext(message)


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; translate it with `_()` where shown."""
    return message
