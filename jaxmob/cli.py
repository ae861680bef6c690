"""Command line: `python -m jaxmob <command>` (also installed as `jaxmob`).

Every command is written once for every environment; an environment's plug-in
(`jaxmob.core.task.Task`) supplies only what differs: its options, scenarios,
map, raw-data builder and user-file reader. `--env NAME` (and `--alg NAME`)
decide which options the parser offers, so `jaxmob train --env taxi --alg
madarl --help` lists exactly the flags that run takes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .core.errors import LoaderError

USER_ERRORS = (LoaderError, ValueError, KeyError, FileNotFoundError)  # bad input: one line, no traceback


def _fail(error) -> int:
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f"error: {message}", file=sys.stderr)
    return 2


# ----------------------------------------------------------------------------- scenarios
def _info(args) -> int:
    from .core.registry import get, names

    envs = [args.env] if args.env else names()
    for env in envs:
        task = get(env)
        scenarios = [args.scenario] if args.scenario else task.scenarios()
        if args.scenario and not task.knows(args.scenario):
            if args.env:
                return _fail(f"unknown scenario {args.scenario!r} of env {env}; available: {', '.join(task.scenarios())}")
            continue
        print(f"== env {env}: {task.headline.replace('_', ' ')} leads its tables; scenarios: {', '.join(task.scenarios())}")
        for name in scenarios:
            try:
                print(task.describe(name))
            except USER_ERRORS as e:
                return _fail(e)
    return 0


def _show(args) -> int:
    from .core.registry import get

    task = get(args.env)
    try:
        scenario = task.load(args.scenario)
    except USER_ERRORS as e:
        return _fail(e)
    out = Path(args.out or f"results/{Path(args.scenario).stem}-map.png")
    written = task.show(scenario, out)
    if written is None:
        return _fail(f"env {args.env} draws no scenario map")
    print(task.describe(args.scenario))
    print(f"wrote {written}")
    return 0


def _scenarios(args) -> int:
    from .core.paths import shared_data_dir
    from .core.registry import get

    task = get(args.env)
    if task.write_scenarios is None:
        return _fail(f"env {args.env} has no scenario builder")
    data = Path(args.data) if args.data else shared_data_dir()
    if task.needs_raw_data(args) and (data is None or not (data / task.raw_data).exists()):
        where = f"under {data}" if data is not None else "(no raw data folder found)"
        return _fail(f"no {task.raw_data} {where}: pass --data DIR (the folder holding {task.raw_data}) "
                     f"or set JAXMOB_SHARED_DATA")
    out = Path(args.out) if args.out else Path("scenarios") / args.env
    try:
        written = task.write_scenarios(args, data, out)
    except USER_ERRORS as e:
        return _fail(e)
    written, failed = written  # ([paths], {source: why it failed})
    for path in written:
        path = Path(path)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    for source, why in failed.items():
        print(f"jaxmob: failed {source}: {why}", file=sys.stderr)
    if not args.out:
        print("(the bundled copies are not replaced; pass --out with the package's scenarios folder to do so)")
    if failed:
        print(f"jaxmob: {len(failed)} of {len(written) + len(failed)} failed; the others were written", file=sys.stderr)
    return 1 if failed else 0


# ----------------------------------------------------------------------------- train, sweep, eval
def _train(args) -> int:
    from .config import ConfigError, config_from_args
    from .report import training_report
    from .train import TrainingDiverged, train

    try:
        config = config_from_args(args)
    except (ConfigError, TypeError) as e:
        return _fail(e)
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

    try:
        config = config_from_args(args)
        grid = {}
        for name in sweepable(config):
            text = getattr(args, f"sweep_{name}", None)
            if text:
                grid[name] = [float(x) for x in text.split(",") if x.strip()]
        result = run_sweep(config, args.seeds, grid, out_dir=args.sweep_out, progress=config.progress,
                           resume=args.resume)
    except (ConfigError, ValueError, TypeError) as e:
        return _fail(e)
    print(format_rows(result["rows"]))
    print(f"wrote {result['out_dir']}/results.json, results.md, curves.png")
    return 0


def _eval(args) -> int:
    from .config import ConfigError, config_from_args
    from .core.registry import get
    from .report import evaluate_baselines, evaluate_run, format_comparison

    task = get(args.env)
    user_file = (getattr(args, task.user_file, None) or None) if task.user_file else None
    extra = {k: getattr(args, k) for k in args.eval_extra}
    try:
        if args.run:
            table = evaluate_run(args.run, day=args.day, user_file=user_file, checkpoint=args.checkpoint,
                                 episodes=args.episodes, bound=not args.no_bound, env=args.env, **extra)
            print(f"{args.run}: {table['checkpoint']} checkpoint (update {table['checkpoint_update']}) "
                  f"on {table['scenario']}")
        else:
            config = config_from_args(args, total_updates=1, updates_per_chunk=1)
            table = evaluate_baselines(config, day=args.day, bound=not args.no_bound, user_file=user_file, **extra)
            print(f"{config.scenario}: baselines{'' if args.no_bound else ' and the clairvoyant bound'}")
    except (ConfigError, TypeError) + USER_ERRORS as e:  # TypeError: a run's config.json with unknown fields
        return _fail(e)
    if table.get("mapping"):
        print(table["mapping"])
    print(format_comparison(table, task))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1, default=float))
        print(f"wrote {args.json}")
    return 0


def _render(args) -> int:
    from .render import check_output, film_of, write_animation

    out = args.out or f"results/{args.env}-episode.gif"
    try:
        check_output(out)
        film = film_of(None if args.run else args.env, scenario=args.scenario, day=args.day, policy=args.policy,
                       run=args.run, checkpoint=args.checkpoint, sample=args.sample, seed=args.seed)
        written = write_animation(film, out, frames=args.frames, fps=args.fps, still=args.still,
                                  still_step=args.still_step)
    except USER_ERRORS as e:
        return _fail(e)
    print(f"{film.title}: {written['frames']} frames of {written['steps']} steps")
    print(f"wrote {', '.join(written[k] for k in ('animation', 'still') if k in written)}")
    return 0


# ----------------------------------------------------------------------------- parser
def _peek(argv, flag: str, default):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument(flag, default=default)
    return getattr(pre.parse_known_args(argv)[0], flag.lstrip("-"))


def chosen_env(argv) -> str:
    """The `--env NAME` of a command line (default rebalance; `scenarios NAME` names it
    positionally): it decides which environment options the parser offers."""
    from .core.registry import names

    if argv[:1] == ["scenarios"] and len(argv) > 1 and argv[1] in names():
        return argv[1]
    run = _peek(argv, "--run", None)
    config = Path(run) / "config.json" if run else None
    default = json.loads(config.read_text()).get("env", "rebalance") if config and config.is_file() else "rebalance"
    return _peek(argv, "--env", default)


def build_parser(env: str = "rebalance", alg: str | None = None) -> argparse.ArgumentParser:
    from .config import add_config_arguments, default_alg
    from .core.registry import algorithm_names, get, names

    if env not in names():
        raise SystemExit(f"jaxmob: error: unknown environment {env!r}; choose from {', '.join(names())}")
    task = get(env)
    planner = task.planner_cli()
    if planner is None:
        alg = alg or default_alg(env)
        if alg not in algorithm_names():
            raise SystemExit(f"jaxmob: error: unknown algorithm {alg!r}; choose from {', '.join(algorithm_names())}")
    parser = argparse.ArgumentParser(prog="jaxmob", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="describe the bundled scenarios of every environment (or of --env)")
    p.add_argument("scenario", nargs="?", help="one scenario (default: all)")
    p.add_argument("--env", choices=names(), help="only this environment")
    p.set_defaults(func=_info)

    p = sub.add_parser("show", help="write a PNG map of a scenario (environments with a map)")
    p.add_argument("scenario")
    p.add_argument("--env", default=env, choices=names(), help="environment (default: rebalance)")
    p.add_argument("--out", help="PNG path (default results/<scenario>-map.png)")
    p.set_defaults(func=_show)

    p = sub.add_parser("scenarios", help="rebuild an environment's bundled scenarios from the raw public files "
                       "(`scenarios NAME --help`)")
    p.add_argument("env", choices=names(), help="the environment whose scenarios to build")
    p.add_argument("--data", help="raw data folder (default $JAXMOB_SHARED_DATA or ../shared/data)")
    p.add_argument("--out", help="output folder (default ./scenarios/<env>; the package's scenarios folder replaces "
                   "the bundled copies)")
    task.scenario_arguments(p)
    p.set_defaults(func=_scenarios)

    p = sub.add_parser("render", help="animate one evaluation episode on the scenario's map (GIF, or MP4 with ffmpeg)")
    p.add_argument("--env", default=env, choices=names(), help="environment (default: rebalance; a run's own with --run)")
    p.add_argument("--scenario", help="scenario (default: the env's bundled default)")
    p.add_argument("--policy", help="one of the env's own policies (default its first: rebalance greedy, taxi greedy, "
                   "amod equal_distribution, parking fifo, routing ia_ra); a wrong name lists them")
    p.add_argument("--run", help="a training run folder: its checkpoint acts (argmax, or --sample)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"), help="with --run: which checkpoint")
    p.add_argument("--sample", action="store_true", help="with --run: draw actions from the policy instead of argmax")
    p.add_argument("--day", "--episode", dest="day", help="the evaluation episode (default: the first test one)")
    p.add_argument("--out", help="the animation: .gif, or .mp4 where ffmpeg is installed "
                   "(default results/<env>-episode.gif)")
    p.add_argument("--still", help="also write one frame to this PNG")
    p.add_argument("--still-step", type=int, help="the step of --still (default the middle of the episode)")
    p.add_argument("--frames", type=int, default=120, help="frames drawn, spread over the episode (default 120)")
    p.add_argument("--fps", type=float, help="frames per second (default: the env's pace)")
    p.add_argument("--seed", type=int, default=0, help="the episode's randomness (a sampled policy, random rules)")
    p.set_defaults(func=_render)

    if planner is not None:  # an env of online planners: train and eval both run them (nothing to learn)
        add_arguments, main_planner = planner
        for command in ("train", "eval"):
            p = sub.add_parser(command, help=f"{env}: run its planners on the test episodes (nothing to train)")
            p.add_argument("--env", default=env, choices=names(), help="environment")
            add_arguments(p)
            p.set_defaults(func=main_planner)
        return parser

    from .sweep import sweepable
    from .config import TrainConfig

    p = sub.add_parser("train", help="train a multi-agent policy (fused, chunked, checkpointed); "
                       "--env NAME --alg NAME --help lists that run's options")
    add_config_arguments(p, env=env, alg=alg)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the run folder")
    p.add_argument("--no-bound", action="store_true", help="skip the clairvoyant bound (and other optimiser rows, e.g. MPC) "
                   "in the final table")
    p.set_defaults(func=_train)

    traced = sweepable(TrainConfig(env=env, alg=alg))
    p = sub.add_parser("sweep", help="seeds x hyperparameters as one vmapped training program")
    add_config_arguments(p, skip=traced, env=env, alg=alg)
    p.add_argument("--seeds", type=int, default=3, help="seeds per hyperparameter setting")
    p.add_argument("--sweep-out", help="output folder (default runs/sweep-<alg>-<scenario>)")
    p.add_argument("--resume", action="store_true", help="go on from the checkpoint an interrupted sweep of the same "
                   "config, seeds and grid left in the output folder")
    for name in traced:
        p.add_argument(f"--{name.replace('_', '-')}", dest=f"sweep_{name}",
                       help=f"comma-separated values of {name} to sweep (default: the train default)")
    p.set_defaults(func=_sweep)

    p = sub.add_parser("eval", help="a trained run (--run) against the baselines and the clairvoyant bound on the "
                       "test episodes; without --run, the baselines alone")
    add_config_arguments(p, env=env, alg=alg)
    p.add_argument("--run", help="a training run folder: its checkpoint (argmax and sampled) beside the baselines; "
                   "the run's own config replaces the options above")
    p.add_argument("--day", help="one evaluation episode (a day or episode name) instead of the test episodes")
    p.add_argument("--episodes", type=int, help="with --run: sampled-policy episodes per evaluation episode")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"),
                   help="with --run: the best-on-validation checkpoint or the last one")
    p.add_argument("--no-bound", action="store_true", help="skip the clairvoyant bound (and other optimiser "
                   "rows, e.g. MPC)")
    p.add_argument("--json", help="also write the table to this JSON file")
    if task.user_file and not task.is_option(task.user_file):
        p.add_argument(f"--{task.user_file}", metavar="FILE", help=f"with --run: evaluate on the days of your own "
                       f"{task.user_file} file (read by the {env} env; dropped rows are counted and reported)")
    p.set_defaults(func=_eval, eval_extra=tuple(task.eval_arguments(p) or ()))
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    env = chosen_env(argv)
    alg = _peek(argv, "--alg", None)
    try:
        parser = build_parser(env, alg)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
