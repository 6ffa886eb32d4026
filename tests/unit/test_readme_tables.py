"""The README's configuration and topic tables match airgrid/config.py and airgrid/topics.py."""

from __future__ import annotations

import re
from pathlib import Path

from airgrid.config import Settings
from airgrid.topics import ALL_TOPICS, FEEDS

README = Path(__file__).resolve().parents[2] / "README.md"


def _section_rows(heading: str) -> list[list[str]]:
    """The table rows (cells stripped) of one `## heading` section of the README."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]


def _documented_variables(cell: str, known: set[str]) -> set[str]:
    """`AIRGRID_A_B`, `_C` names AIRGRID_A_B and AIRGRID_A_C (or AIRGRID_C): a leading
    underscore continues some prefix of the first name in the cell."""
    names = re.findall(r"`([A-Z_0-9]+)`", cell)
    first, found = names[0], {names[0]}
    parts = first.split("_")
    for suffix in names[1:]:
        if not suffix.startswith("_"):
            found.add(suffix)
            continue
        candidates = ["_".join(parts[:i]) + suffix for i in range(1, len(parts))]
        found.add(next((c for c in reversed(candidates) if c in known), candidates[-1]))
    return found


def test_every_setting_is_in_the_configuration_table_and_nothing_else() -> None:
    known = {f"AIRGRID_{name.upper()}" for name in Settings.model_fields}
    documented: set[str] = set()
    for row in _section_rows("Configuration"):
        documented |= _documented_variables(row[0], known)
    assert known - documented == set(), "settings missing from the README"
    assert documented - known == set(), "README documents settings that do not exist"


def test_the_topic_table_is_the_topic_table() -> None:
    rows = {row[0].strip("`"): row for row in _section_rows("Topics")}
    feed = FEEDS[0]
    expected = {t.name: t for t in ALL_TOPICS if t not in FEEDS}
    expected["airgrid.feed.<department>"] = feed
    assert set(rows) == set(expected)
    for name, topic in expected.items():
        key, partitions, configs = rows[name][1], rows[name][3], rows[name][4]
        assert key == topic.key, name
        assert int(partitions) == topic.partitions, name
        assert ("compacted" in configs) == topic.compacted, name
