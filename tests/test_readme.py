"""The README's links lead somewhere inside the repository: files that exist (the design, the
charts) and headings that exist, so a reader of a clone or of GitHub never meets a dead link."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("document", ["README.md", "docs/design.md"])
def test_links_point_inside_the_repository(document):
    text = (REPO / document).read_text()
    headings = {anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    dead = []
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, fragment = target.partition("#")
        if path:
            found = (REPO / document).parent / path
            if not found.resolve().is_relative_to(REPO) or not found.exists():
                dead.append(target)
        elif fragment not in headings:
            dead.append(target)
    assert dead == []
    assert document != "README.md" or "(docs/design.md)" in text
