"""The documentation stays what it claims: a README a newcomer reads in minutes, links that
resolve, and results tables that are generated from the results JSON they cite."""
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
import doc_tables  # noqa: E402

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_readme_is_short_and_links_every_environment_page():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for env in ("rebalance", "taxi", "amod", "routing", "parking"):
        assert f"(docs/{env}.md)" in text, env
    assert text.startswith("```bash\nmake train") and "\nmake test" in text.split("```")[1]


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")) and not (page.parent / target).exists():
                broken.append(f"{page.name}: {target}")
    assert not broken, broken


def test_generated_tables_match_their_results_json():
    assert doc_tables.main(["--check"]) == 0
    marked = sum(len(doc_tables.MARKED.findall(p.read_text())) for p in PAGES)
    assert marked >= 10


def test_the_check_notices_a_stale_table():
    stale = ("<!-- table: experiments/routing_table.py results/routing_table.json -->\n"
             "| fleet | policy |\n|---|---|\n| 20 | IA |\n<!-- /table -->\n")
    fresh = doc_tables.render(stale)
    assert fresh != stale and "two-phase rollout" in fresh and doc_tables.render(fresh) == fresh
