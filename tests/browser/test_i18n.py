"""The message catalogues: the same keys and placeholders in every language, and every key
the client names exists (so no user-visible string is missing in one language)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "static"
CATALOGUES = {p.stem: p for p in sorted((STATIC / "i18n").glob("*.json"))}
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# A key is "namespace.name"; the code names keys only as string literals (t("a.b"), or maps
# like {kicked: "closed.kicked"}) and in data-i18n attributes of the HTML.
KEY_LITERAL = re.compile(r"""["'`]([a-z][a-z0-9_]*\.[a-z0-9_]+)["'`]""")
HTML_KEY = re.compile(r'data-i18n(?:-label|-placeholder)?="([^"]+)"')


def load(lang: str) -> dict[str, str]:
    data = json.loads(CATALOGUES[lang].read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def keys_in_code() -> dict[str, set[str]]:
    """Key-like literals, by file, whose namespace is one the catalogues use."""
    namespaces = {k.split(".", 1)[0] for k in load("en")}
    found: dict[str, set[str]] = {}
    for path in sorted(STATIC.rglob("*.js")):
        text = path.read_text(encoding="utf-8")
        keys = {k for k in KEY_LITERAL.findall(text) if k.split(".", 1)[0] in namespaces}
        found[path.name] = keys
    found["index.html"] = set(HTML_KEY.findall((STATIC / "index.html").read_text("utf-8")))
    return found


def test_both_languages_exist() -> None:
    assert set(CATALOGUES) == {"en", "zh-CN"}


@pytest.mark.parametrize("lang", sorted(set(CATALOGUES) - {"en"}))
def test_same_keys_and_placeholders_as_english(lang: str) -> None:
    en, other = load("en"), load(lang)
    assert sorted(set(en) - set(other)) == [], f"missing in {lang}"
    assert sorted(set(other) - set(en)) == [], f"missing in en (only in {lang})"
    for key, text in en.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(other[key])), key
        assert other[key].strip(), f"{lang}: {key} is empty"


@pytest.mark.parametrize("lang", sorted(CATALOGUES))
def test_every_key_the_code_uses_exists(lang: str) -> None:
    catalogue = load(lang)
    missing = {name: sorted(keys - set(catalogue)) for name, keys in keys_in_code().items()}
    assert {k: v for k, v in missing.items() if v} == {}


def test_no_key_is_unused() -> None:
    used = set().union(*keys_in_code().values())
    assert sorted(set(load("en")) - used) == []
