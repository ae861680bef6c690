"""Regenerate the results tables of README.md and docs/*.md from the results JSON files.

A generated table sits between `<!-- table: SCRIPT RESULTS [KEY=VALUE ...] -->` and
`<!-- /table -->`; SCRIPT (an experiment) writes it with its `table(results, **options)` from
RESULTS, the JSON it wrote. Rerun an experiment, then

    python experiments/doc_tables.py          # rewrite every generated table
    python experiments/doc_tables.py --check  # exit 1 where a page differs from its JSON (a test runs this)
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKED = re.compile(r"(<!-- table: (?P<script>\S+) (?P<results>\S+)(?P<options>[^>]*?) -->\n)(?P<body>.*?)(?P<end><!-- /table -->)",
                    re.S)


def pages() -> list:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _table_function(script: str):
    spec = importlib.util.spec_from_file_location(Path(script).stem, ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.table


def _option(text: str):
    return {"true": True, "false": False}.get(text.lower(), text)


def render(text: str) -> str:
    """`text` with every marked table regenerated from its JSON."""
    def one(m):
        options = dict(o.split("=", 1) for o in m["options"].split())
        results = json.loads((ROOT / m["results"]).read_text())
        table = _table_function(m["script"])(results, **{k: _option(v) for k, v in options.items()})
        return m.group(1) + table.rstrip() + "\n" + m["end"]
    return MARKED.sub(one, text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report pages whose tables differ from their JSON")
    args = ap.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text()
        new = render(text)
        if new != text:
            stale.append(page.relative_to(ROOT))
            if not args.check:
                page.write_text(new)
    verb = "differ from their results JSON" if args.check else "rewritten"
    print(f"{len(stale)} page(s) {verb}: {', '.join(map(str, stale)) or 'none'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
