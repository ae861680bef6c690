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


def _train(args) -> int:
    from .config import ConfigError, config_from_args
    from .report import training_report
    from .train import TrainingDiverged, train

    try:
        config = config_from_args(args)
    except (ConfigError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        result = train(config, resume=args.resume)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    print(training_report(result, bound=not args.no_bound))
    return 0


def _sweep(args) -> int:
    from .config import ConfigError, config_from_args
    from .sweep import format_rows, run_sweep, sweepable

    grid = {}
    for name in sweepable(args.env):
        text = getattr(args, f"sweep_{name}")
        if text:
            grid[name] = [float(x) for x in text.split(",") if x.strip()]
    try:
        config = config_from_args(args)
        result = run_sweep(config, args.seeds, grid, out_dir=args.sweep_out, progress=config.progress)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_rows(result["rows"]))
    print(f"wrote {result['out_dir']}/results.json, results.md, curves.png")
    return 0


def chosen_env(argv) -> str:
    """The `--env NAME` of a command line (default rebalance): it decides which
    environment options the parser offers."""
    from .envs.registry import names

    if argv[:1] == ["scenarios"] and len(argv) > 1 and argv[1] in names():  # `jaxmob scenarios taxi ...`
        return argv[1]
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--env", default="rebalance")
    return pre.parse_known_args(argv)[0].env


def build_parser(env: str = "rebalance") -> argparse.ArgumentParser:
    from .envs.registry import get, names

    if env not in names():
        raise SystemExit(f"jaxmob: error: unknown environment {env!r}; choose from {', '.join(names())}")
    parser = argparse.ArgumentParser(prog="jaxmob", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("show", help="write a PNG map of a scenario: daily demand and net flow per region")
    p.add_argument("scenario")
    p.add_argument("--out", help="PNG path (default results/<scenario>-map.png)")
    p.set_defaults(func=_show)
    p = sub.add_parser("info", help="print scenarios: regions, trips per day, fleet, replay days")
    p.add_argument("scenario", nargs="?")
    p.set_defaults(func=_info)
    p = sub.add_parser("scenarios", help="rebuild the bundled scenarios from the raw public files "
                       "(`scenarios taxi --help`: taxi scenarios, also from your own TLC files)")
    cli = get(env).scenarios_cli()
    if cli is not None:
        add_arguments, main_scenarios = cli
        p.add_argument("env", choices=[env], help="the environment whose scenarios to build")
        add_arguments(p)
        p.set_defaults(func=main_scenarios)
    else:
        p.add_argument("names", nargs="*", help="scenario names (default: all real ones)")
        p.add_argument("--data", help="raw data folder (default $JAXMOB_SHARED_DATA or ../shared/data)")
        p.add_argument("--out", help="output folder (default the package's scenarios folder)")
        p.set_defaults(func=_scenarios)
    from .config import add_config_arguments
    from .sweep import sweepable

    planner = get(env).train_cli()
    if planner is not None:  # an env of online planners: `train` runs them (nothing to learn)
        add_arguments, main_planner = planner
        p = sub.add_parser("train", help=f"{env}: run its planners on the test episodes (nothing to train)")
        p.add_argument("--env", default=env, choices=names(), help="environment")
        add_arguments(p)
        p.set_defaults(func=main_planner)
    else:
        p = sub.add_parser("train", help="train a multi-agent PPO policy (fused, chunked, checkpointed); "
                           "--env NAME --help lists that environment's options")
        add_config_arguments(p, env=env)
        p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run folder")
        p.add_argument("--no-bound", action="store_true", help="skip the clairvoyant bound in the final table")
        p.set_defaults(func=_train)
        p = sub.add_parser("sweep", help="seeds x hyperparameters as one vmapped training program")
        add_config_arguments(p, skip=sweepable(env), env=env)
        p.add_argument("--seeds", type=int, default=3, help="seeds per hyperparameter setting")
        p.add_argument("--sweep-out", help="output folder (default runs/sweep-<alg>-<scenario>)")
        for name in sweepable(env):
            p.add_argument(f"--{name.replace('_', '-')}", dest=f"sweep_{name}",
                           help=f"comma-separated values of {name} to sweep (default: the train default)")
        p.set_defaults(func=_sweep)
    cli = get(env).eval_cli()
    if cli is not None:
        add_arguments, main_eval = cli
        p = sub.add_parser("eval", help="a trained run (--run) or the baselines and the clairvoyant bound on "
                           "an evaluation episode")
        p.add_argument("--env", default=env, choices=names(), help="environment (default: rebalance)")
        add_arguments(p)
        p.set_defaults(func=main_eval)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(chosen_env(argv)).parse_args(argv)
    return int(args.func(args) or 0)
