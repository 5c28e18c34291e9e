"""docs/configuration.md is generated from the settings classes (tools/config_docs.py): it says what the code does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("config_docs", ROOT / "tools" / "config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_page_is_what_the_settings_say():
    generator = _generator()
    expected = generator.render()  # raises, naming the field, if a setting has no description
    written = generator.DOC.read_text(encoding="utf-8")
    assert written == expected, (
        f"docs/configuration.md and the settings classes disagree: run `{generator.REGENERATE}` and commit the page"
    )


def test_every_setting_of_every_process_is_on_the_page():
    generator = _generator()
    page = generator.render()
    for _, target, _ in generator.SECTIONS:
        cls = generator.load(target)
        for name, info in cls.model_fields.items():
            assert f"`{generator.variable(cls, name, info)}`" in page, f"{target}.{name} is missing"
