"""Every command for every environment, through the real entry point (`python -m jaxmob ...`
in a subprocess, on bundled scenarios with tiny budgets), so a slip between what a test
passes and what the command line passes (a `str` for a `Path`) cannot hide."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
COMMON = "--total-updates 1 --updates-per-chunk 1 --eval-episodes 2 --no-progress"


def jaxmob(*args, cwd=REPO, timeout=900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "jaxmob", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def test_eval_without_a_run_tables_the_baselines_and_bound():
    proc = jaxmob("eval", "--env", "amod", "--scenario", "nyc_brooklyn", "--day", "test-2000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "equal distribution" in proc.stdout and "bound (clairvoyant LP)" in proc.stdout


def test_algorithms_that_do_not_fit_are_named_errors_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from jaxmob.cli import main

    monkeypatch.chdir(tmp_path)
    cases = [("rebalance", "meta", "trains continuous actions"), ("taxi", "meta", "trains continuous actions"),
             ("amod", "madarl", "needs the agents' tokens"), ("parking", "mappo", "trains discrete actions"),
             ("rebalance", "marl_gcn", "trains continuous actions")]
    for env, alg, why in cases:
        assert main(["train", "--env", env, "--alg", alg, "--out-dir", str(tmp_path / f"{env}-{alg}")]) == 2
        err = capsys.readouterr().err
        assert why in err and "algorithms that fit env" in err, (env, alg, err)
    for argv, message in ((["train", "--alg", "nope"], "unknown algorithm 'nope'"),
                          (["train", "--env", "nope"], "unknown environment 'nope'"),
                          (["train", "--total-updates", "-1"], "total_updates: must be >= 1")):
        assert main(argv) == 2 and message in capsys.readouterr().err, argv
    # and through the real entry point, with no traceback
    for argv, message in ((["train", "--env", "amod", "--alg", "madarl"], "needs the agents' tokens"),
                          (["train", "--env", "routing", "--scenario", "missing.npz"], "missing.npz")):
        proc = jaxmob(*argv, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, (argv, proc.stderr)
    assert not any(tmp_path.rglob("*.json")), "a refused run left files behind"


def test_alg_help_lists_every_algorithm_and_its_own_options():
    from jaxmob.core.registry import algorithm_names

    proc = jaxmob("train", "--alg", "hagps", "--help")
    assert proc.returncode == 0 and all(a in proc.stdout for a in algorithm_names())
    assert "--d-split" in proc.stdout and "--attention" not in proc.stdout
    proc = jaxmob("train", "--env", "taxi", "--alg", "madarl", "--help")
    assert "--attention" in proc.stdout and "--d-split" not in proc.stdout and "--num-taxis" in proc.stdout


def test_info_and_show_cover_every_environment(tmp_path):
    from jaxmob.core.registry import ENVIRONMENTS, get

    proc = jaxmob("info")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for env in ENVIRONMENTS:  # the registry's own lines (a test may register more in this process)
        assert f"== env {env}" in proc.stdout
        for scenario in get(env).scenarios():
            assert scenario in proc.stdout
    proc = jaxmob("show", "manhattan-106", "--out", tmp_path / "m.png")
    assert proc.returncode == 0 and (tmp_path / "m.png").stat().st_size > 10_000
    proc = jaxmob("show", "nyc_brooklyn", "--env", "amod")
    assert proc.returncode == 2 and "draws no scenario map" in proc.stderr


def test_scenarios_never_write_into_the_package_without_out(shared_data, tmp_path):
    bundled = REPO / "jaxmob" / "envs" / "amod" / "scenarios"
    before = {p.name: p.stat().st_mtime_ns for p in bundled.glob("*.npz")}
    proc = jaxmob("scenarios", "amod", "--data", shared_data, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in bundled.glob("*.npz")} == before
    written = sorted(p.name for p in (tmp_path / "scenarios" / "amod").glob("*.npz"))
    assert written == sorted(before)
    for name in written:  # and they are the bundled ones, byte for byte
        assert (tmp_path / "scenarios" / "amod" / name).read_bytes() == (bundled / name).read_bytes()
    proc = jaxmob("scenarios", "parking", "--data", tmp_path / "no-such-folder", cwd=tmp_path)
    assert proc.returncode == 2 and "no melbourne-parking" in proc.stderr


def documented_commands() -> list:
    """Every `python -m jaxmob ...` and `make ...` line in a code block of the README and the docs pages."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    out = []
    for page in pages:
        fenced = False
        for line in page.read_text().splitlines():
            if line.startswith("```"):
                fenced = not fenced
                continue
            for start in ("python -m jaxmob ", "make "):
                if fenced and line.strip().startswith(start):
                    out.append((page.name, line.split("#")[0].strip()))
    return out


def test_every_documented_command_is_one_the_tests_run():
    """The README and docs name only commands whose path a test runs through the entry point:
    train/eval of every trainable env (above, and `make train` in CI's own figures), the planner
    env, info, show, scenarios, sweep, render (`test_render.py`); an unknown subcommand or env in the
    docs fails here."""
    from jaxmob.cli import build_parser
    from jaxmob.core.registry import names

    commands = documented_commands()
    assert len(commands) >= 10
    for page, line in commands:
        words = line.split()
        if words[0] == "make":
            target = words[1] if len(words) > 1 else ""
            assert target in ("train", "test", "bench", "scenarios", "show", "install"), (page, line)
            for word in words[2:]:
                key, _, value = word.partition("=")
                if not value or not key.isupper():
                    continue  # the inside of an ARGS="..." value
                assert key in ("ENV", "ALG", "SCENARIO", "ARGS"), (page, line)
                if key == "ENV":
                    assert value in names(), (page, line)
            continue
        argv = [w for w in words[3:] if not w.isupper()]  # words in capitals (RUN, FILE) stand for the user's own values
        command = argv[0]
        assert command in ("train", "eval", "sweep", "info", "show", "scenarios", "render"), (page, line)
        env = argv[1] if command == "scenarios" else (argv[argv.index("--env") + 1] if "--env" in argv else "rebalance")
        assert env in names(), (page, line)
        alg = argv[argv.index("--alg") + 1] if "--alg" in argv else None
        parser = build_parser(env, alg)  # the flags exist for that env and algorithm
        flags = [w.split("=")[0] for w in argv if w.startswith("--")]
        sub = parser._subparsers._group_actions[0].choices[command]
        known = {o for a in sub._actions for o in a.option_strings}
        assert set(flags) <= known, (page, line, set(flags) - known)


def test_sweep_runs_from_the_command_line(tmp_path):
    proc = jaxmob("sweep", "--env", "rebalance", "--alg", "share_all", "--scenario", "synthetic-square", "--horizon", "24",
                  "--rollout-steps", "24", "--num-envs", "2", "--epochs", "1", "--minibatches", "2", "--hidden", "16",
                  *COMMON.split(), "--seeds", "2", "--lr", "0.001,0.003", "--sweep-out", tmp_path / "sw")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "sw" / "results.json").read_text())["rows"]
    assert [r["setting"] for r in rows] == ["lr=0.001", "lr=0.003"] and all(r["seeds"] == 2 for r in rows)


def test_the_sweep_table_shows_the_deployed_policys_validation_score():
    """Where the env deploys the sampled policy, the score to choose a setting by is its validation
    score, not the argmax one: the table shows both, each number where its header says."""
    from jaxmob.sweep import format_rows

    row = {"setting": "ent_coef=0", "seeds": 3, "headline": "order_response_rate"}
    for i, k in enumerate(("validation", "test", "test_sampled", "train")):
        row.update({k + "_mean": 0.1 * (i + 1), k + "_std": 0.01})
    argmax_only = format_rows([row]).splitlines()
    assert "(sampled) | test" not in argmax_only[0] and argmax_only[2].count("±") == 4
    sampled = format_rows([{**row, "validation_sampled_mean": 0.9, "validation_sampled_std": 0.02}]).splitlines()
    header = [h.strip() for h in sampled[0].strip("|").split("|")]
    cells = [c.strip() for c in sampled[2].strip("|").split("|")]
    assert cells[header.index("validation order response rate (sampled)")] == "0.9000 ± 0.0200"
    assert cells[header.index("validation order response rate (argmax)")] == "0.1000 ± 0.0100"
    assert cells[header.index("test order response rate (sampled)")] == "0.3000 ± 0.0100"
    assert len(header) == len(cells) == 7 and sampled[1].count("---") == 7
