"""(Maintainers) the message catalogs: extract, update and compile them with Babel.

gettext catalogs, one domain per kata folder (its tests' messages) plus `harness`
(katas/_harness/testing.py). The English text in the source is the msgid; a translator
edits katas/_harness/locale/<lang>/LC_MESSAGES/<domain>.po with any PO editor (Poedit,
Lokalize, Weblate) and `python -m katas catalog` compiles it. At run time only the
stdlib's gettext reads the compiled .mo files (i18n.py); Babel is needed only here.

    python -m katas catalog              # every converted domain: .pot, .po update, .mo
    python -m katas catalog 01_autograd  # one domain

A new language: `pybabel init -D DOMAIN -l fr -d katas/_harness/locale
-i katas/_harness/locale/DOMAIN.pot` for each domain, translate, then run the command,
and add the language to language.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from .manifest import PROJECT_ROOT

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
KEYWORDS = {"_": None, "N_": None}
COMMENT_TAGS = ("i18n:",)
HARNESS = "harness"
HARNESS_SOURCES = ("katas/_harness/testing.py", "katas/_harness/processes.py")

# Katas whose test messages are all marked with _() and translated: tests/test_catalogs.py
# holds exactly these to a complete catalog and no English prose left in their test files.
# To convert another kata, add its folder name here (README.md, "Messages and translations").
HEADER_COMMENT = (
    "# The {domain} messages of torch-katas in {language}.\n"
    "# Translate the msgstr lines; keep every {{field}} as it is. `python -m katas catalog`\n"
    "# adds new messages, drops old ones and compiles the .mo (README.md, Adding a kata)."
)
CONVERTED = (
    "00_tensors",
    "01_autograd",
    "02_autograd_engine",
    "03_dynamic_graphs",
    "04_modules",
    "05_losses_optimizers",
    "06_training_loop",
    "07_training_dynamics",
    "08_convolutions",
    "09_checkpointing",
    "10_devices",
    "11_datasets",
    "12_modern_pytorch",
    "13_capstone",
)


def domains() -> tuple[str, ...]:
    return (HARNESS, *CONVERTED)


def sources(domain: str, root: Path = PROJECT_ROOT) -> list[Path]:
    """The files whose `_()` and `N_()` messages make up `domain`."""
    if domain == HARNESS:
        return [root / name for name in HARNESS_SOURCES]
    return sorted((root / "katas" / domain).glob("test_*.py"))


def languages() -> list[str]:
    return sorted(p.name for p in LOCALE_DIR.iterdir() if (p / "LC_MESSAGES").is_dir())


def po_path(domain: str, language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po"


def pot_path(domain: str) -> Path:
    return LOCALE_DIR / f"{domain}.pot"


def extract(domain: str, root: Path = PROJECT_ROOT):
    """The template catalog of `domain`: every message its source files mark, in source order."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_file

    template = Catalog(project="torch-katas", version="1", domain=domain, msgid_bugs_address="", fuzzy=False)
    template.header_comment = HEADER_COMMENT.format(domain=domain, language="(template)")
    for path in sources(domain, root):
        where = path.relative_to(root).as_posix()
        for lineno, message, comments, context in extract_from_file(
            "python", path, keywords=KEYWORDS, comment_tags=COMMENT_TAGS, strip_comment_tags=True
        ):
            template.add(message, None, [(where, lineno)], auto_comments=comments, context=context)
    return template


def read(path: Path):
    from babel.messages.pofile import read_po

    with path.open("rb") as handle:
        return read_po(handle, domain=path.stem)


def render_po(catalog, *, template: bool = False) -> bytes:
    from babel.messages.pofile import write_po

    buffer = io.BytesIO()
    # No line numbers: a test file's edits then leave its catalog's references alone.
    write_po(buffer, catalog, width=100, include_lineno=False, omit_header=False, ignore_obsolete=True)
    return buffer.getvalue()


def render_mo(catalog) -> bytes:
    from babel.messages.mofile import write_mo

    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


def _without_dates(text: bytes) -> bytes:
    return b"\n".join(
        line
        for line in text.splitlines()
        if not line.startswith((b'"POT-Creation-Date:', b'"PO-Revision-Date:'))
    )


def _write(path: Path, data: bytes) -> bool:
    """Write unless only the dates in the header would change; True when written."""
    if path.exists() and _without_dates(path.read_bytes()) == _without_dates(data):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def update(names: Iterable[str] = (), root: Path = PROJECT_ROOT) -> list[str]:
    """Extract each domain to its .pot, merge it into every language's .po, compile the .mo.

    A message no longer in the source is dropped from the .po; a new one gets an empty
    translation (shown in English until translated). Returns one line per file written.
    """
    from babel.messages.catalog import Catalog

    report = []
    for domain in names or domains():
        template = extract(domain, root)
        if _write(pot_path(domain), render_po(template, template=True)):
            report.append(f"extracted {len(template)} message(s) to {pot_path(domain).relative_to(root)}")
        for language in languages():
            po = po_path(domain, language)
            catalog = read(po) if po.exists() else Catalog(locale=language, domain=domain, fuzzy=False)
            catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
            catalog.obsolete.clear()
            catalog.project, catalog.version = "torch-katas", "1"
            catalog.header_comment = HEADER_COMMENT.format(domain=domain, language=language)
            if _write(po, render_po(catalog)):
                report.append(f"updated {po.relative_to(root)}")
            missing = sum(1 for m in catalog if m.id and not m.string)
            if missing:
                report.append(f"{po.relative_to(root)}: {missing} message(s) still to translate")
            if _write(po.with_suffix(".mo"), render_mo(read(po))):
                report.append(f"compiled {po.with_suffix('.mo').relative_to(root)}")
    return report
