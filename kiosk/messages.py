"""Extract the translatable strings from the source: `python -m kiosk.messages` writes
config/locales/kiosk.pot and reports which catalogs miss which strings; with `--update`
it also merges the new strings into every config/locales/<lang>/LC_MESSAGES/kiosk.po.

A string is translatable when it is the first argument of `_()`, `N_()` or `tr()`
(as a plain call or a method, e.g. `self._("...")`, `self.tr("...")`)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from .i18n import LOCALE_DIR, parse_po

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("kiosk", "screens", "drivers")
CALLS = {"_", "N_", "tr"}


def extract(root: Path = ROOT) -> dict[str, list[str]]:
    """msgid -> places ("screens/result.py:42")."""
    found: dict[str, list[str]] = {}
    for pkg in SOURCES:
        for path in sorted((root / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                f = node.func
                name = f.id if isinstance(f, ast.Name) else (
                    f.attr if isinstance(f, ast.Attribute) else "")
                arg = node.args[0]
                if name in CALLS and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(arg.value, []).append(
                        f"{path.relative_to(root)}:{node.lineno}")
    return found


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_pot(found: dict[str, list[str]], path: Path) -> None:
    out = ['msgid ""', 'msgstr ""', '"Content-Type: text/plain; charset=UTF-8\\n"', ""]
    for msgid, places in sorted(found.items(), key=lambda kv: kv[1][0]):
        out.append("#: " + " ".join(places))
        out.append(f"msgid {_quote(msgid)}")
        out.append('msgstr ""')
        out.append("")
    path.write_text("\n".join(out), encoding="utf-8")


def update_po(po: Path, found: dict[str, list[str]]) -> None:
    """Rewrite a catalog in source order: keep its translations and header comments,
    add new strings untranslated, drop strings the source no longer has."""
    text = po.read_text(encoding="utf-8") if po.exists() else ""
    have = parse_po(text)
    head = [ln for ln in text.splitlines() if ln.startswith("# ")]
    lang = po.parent.parent.name
    header = have.get("", "") or f"Content-Type: text/plain; charset=UTF-8\nLanguage: {lang}\n"
    out = head + ['msgid ""', 'msgstr ""']
    out += [_quote(line + "\n") for line in header.splitlines()] + [""]
    for msgid, places in sorted(found.items(), key=lambda kv: kv[1][0]):
        out.append("#: " + " ".join(places))
        out.append(f"msgid {_quote(msgid)}")
        out.append(f"msgstr {_quote(have.get(msgid, ''))}")
        out.append("")
    po.write_text("\n".join(out), encoding="utf-8")


def missing(lang: str, found: dict[str, list[str]]) -> list[str]:
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "kiosk.po"
    have = parse_po(po.read_text(encoding="utf-8")) if po.exists() else {}
    return [m for m in found if m not in have and m]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    found = extract()
    write_pot(found, LOCALE_DIR / "kiosk.pot")
    if "--update" in args:
        for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/kiosk.po")):
            update_po(po, found)
    print(f"{len(found)} strings -> {LOCALE_DIR / 'kiosk.pot'}")
    bad = 0
    for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/kiosk.po")):
        lang = po.parent.parent.name
        miss = missing(lang, found)
        bad += len(miss)
        print(f"{lang}: {len(found) - len(miss)}/{len(found)} translated")
        for m in miss:
            print(f"  missing: {m!r}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
