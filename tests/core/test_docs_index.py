"""docs/README.md indexes every documentation page, and every link in it resolves (issue 29).

A page nobody links to is a page nobody reads: a new page under ``docs/`` (or ``docs/sources/``)
fails this test until the index names it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
INDEX = DOCS / "README.md"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _links(page: Path) -> set[Path]:
    """The local files a Markdown page links to, resolved against the page's folder."""
    text = page.read_text(encoding="utf-8")
    return {
        (page.parent / target).resolve()
        for target in LINK.findall(text)
        if "://" not in target and not target.startswith("mailto:")
    }


def test_the_index_links_every_page() -> None:
    pages = {p.resolve() for p in DOCS.rglob("*.md") if p != INDEX}
    unlinked = sorted(str(p.relative_to(DOCS)) for p in pages - _links(INDEX))
    assert not unlinked, f"docs pages missing from docs/README.md: {unlinked}"


def test_every_link_of_the_index_resolves() -> None:
    broken = sorted(str(p) for p in _links(INDEX) if not p.exists())
    assert not broken, f"docs/README.md links to files that do not exist: {broken}"


def test_the_readme_leads_to_the_index() -> None:
    assert INDEX.resolve() in _links(ROOT / "README.md")


def test_the_readme_command_table_names_every_command() -> None:
    """Every top-level ``rewardplug`` command has its row in the README's command table."""
    from click.testing import CliRunner

    from rewardplug.cli import cli

    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1]
    commands = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {"score", "rubric", "validate"} <= commands  # the help text was read
    table = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(c for c in commands if f"| `rewardplug {c}" not in table)
    assert not missing, f"README's command table has no row for: {missing}"
