"""Command line: `python -m jaxmob <command>` (also installed as `jaxmob`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _show(args) -> int:
    from . import city as jcity
    from .plots import plot_city

    scenario = jcity.load(args.scenario)
    out = Path(args.out or f"results/{args.scenario}-map.png")
    plot_city(scenario.city, out)
    print(scenario)
    print(f"wrote {out}")
    return 0


def _info(args) -> int:
    from . import city as jcity

    names = [args.scenario] if args.scenario else jcity.available()
    for name in names:
        print(jcity.load(name))
    return 0


def _scenarios(args) -> int:
    from .city import scenarios
    from .paths import shared_data_dir

    data = Path(args.data) if args.data else shared_data_dir()
    if data is None or not data.is_dir():
        print("error: no raw data folder: pass --data DIR (the folder holding citibike-nyc/ and citibike-jc/) "
              "or set JAXMOB_SHARED_DATA", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else scenarios.SCENARIO_DIR
    for path in scenarios.write_bundled(data, out, args.names or None):
        print(f"wrote {path} ({path.stat().st_size:,} bytes) and {path.with_suffix('.json').name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxmob", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("show", help="write a PNG map of a scenario: daily demand and net flow per region")
    p.add_argument("scenario")
    p.add_argument("--out", help="PNG path (default results/<scenario>-map.png)")
    p.set_defaults(func=_show)

    p = sub.add_parser("info", help="print scenarios: regions, trips per day, fleet, replay days")
    p.add_argument("scenario", nargs="?")
    p.set_defaults(func=_info)

    p = sub.add_parser("scenarios", help="rebuild the bundled scenarios from the raw public files")
    p.add_argument("names", nargs="*", help="scenario names (default: all real ones)")
    p.add_argument("--data", help="raw data folder (default $JAXMOB_SHARED_DATA or ../shared/data)")
    p.add_argument("--out", help="output folder (default the package's scenarios folder)")
    p.set_defaults(func=_scenarios)

    try:
        from .evaluate import add_eval_arguments, main_eval
    except ImportError:  # pragma: no cover - evaluation module is optional while developing
        pass
    else:
        p = sub.add_parser("eval", help="no-op, random, greedy and the clairvoyant bound on a replay day")
        add_eval_arguments(p)
        p.set_defaults(func=main_eval)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
