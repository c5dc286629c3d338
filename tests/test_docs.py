"""README.md and docs/: short enough to read, and every link and file they name exists."""

import re

import pytest

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_reads_in_five_minutes():
    assert (ROOT / "README.md").stat().st_size <= 12_000


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_exists(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # https://, mailto:
            continue
        path, _, anchor = target.partition("#")
        if path:
            assert (page.parent / path).exists(), f"{page.name}: {target}"
        if anchor:
            text = (page.parent / path).read_text() if path else page.read_text()
            headings = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                        for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
            assert anchor in headings, f"{page.name}: {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_named_repository_file_exists(page):
    """`src/...`, `benchmarks/...`, `tests/...` paths in code spans name files that are there."""
    for name in re.findall(r"`((?:src|benchmarks|tests)/[\w./\-]+\.(?:py|sh|yaml|txt))`", page.read_text()):
        assert (ROOT / name).exists(), f"{page.name}: {name}"
