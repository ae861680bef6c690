"""`jaxmob train` then `jaxmob eval --run` for the bike env, through the entry point: a trained
checkpoint against the baselines on a bundled day or on a user's own trip file mapped by the
scenario's station map (the other environments: `test_cli_runs.py`)."""
import subprocess
import sys
from pathlib import Path

import jaxmob.envs.rebalance.city
from jaxmob.report import evaluate_run

REPO = Path(__file__).resolve().parents[1]


def test_eval_run_on_a_users_file_counts_unknown_stations(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "jaxmob", "train", "--alg", "ippo", "--scenario", "manhattan-citibike",
                           "--total-updates", "2", "--updates-per-chunk", "1", "--num-envs", "2", "--rollout-steps", "24",
                           "--horizon", "24", "--epochs", "1", "--minibatches", "2", "--hidden", "16", "--no-progress",
                           "--eval-episodes", "2", "--out-dir", str(run), "--no-bound"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = {"run_dir": str(run)}
    m = jaxmob.envs.rebalance.city.load("manhattan-citibike").station_map
    a, b = m.ids[0], m.ids[1]
    trips = tmp_path / "mine.csv"
    trips.write_text("start_ts,duration,start_station,end_station,subscriber,birth_year\n"
                     f"2019-03-05 00:10:00,600,{a},{b},1,1980\n2019-03-05 01:10:00,700,{b},{a},1,1980\n"
                     f"2019-03-05 02:10:00,700,{b},424242,1,1980\n")
    table = evaluate_run(result["run_dir"], user_file=trips, bound=False)
    assert table["days"] == ["2019-03-05"] and table["checkpoint_update"] >= 1
    assert "mapped 2 of 2 trips" in table["mapping"] and "1 unknown station" in table["mapping"]
    names = [r["policy"] for r in table["per_day"]["2019-03-05"]]
    assert names[:2] == ["ippo (argmax)", "ippo (sampled, 2 episodes)"] and "no-op" in names
    proc = subprocess.run([sys.executable, "-m", "jaxmob", "eval", "--run", result["run_dir"], "--day", "2017-06-09",
                           "--no-bound", "--episodes", "2"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ippo (sampled, 2 episodes)" in proc.stdout and "greedy" in proc.stdout and "±" in proc.stdout
    # the README's command with a user's file, through the real entry point (a str path, not a Path)
    proc = subprocess.run([sys.executable, "-m", "jaxmob", "eval", "--run", result["run_dir"], "--trips", str(trips),
                           "--no-bound", "--episodes", "2"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "day 2019-03-05" in proc.stdout and "1 unknown station" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "jaxmob", "eval", "--run", str(tmp_path / "nothing")],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert bad.returncode == 2 and "not a jaxmob training run folder" in bad.stderr
    # the trained policy's episode (sampled actions) as an animation, through the entry point
    gif = tmp_path / "episode.gif"
    proc = subprocess.run([sys.executable, "-m", "jaxmob", "render", "--run", result["run_dir"], "--frames", "3",
                           "--sample", "--out", str(gif)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "learned policy: 3 frames of 24 steps" in proc.stdout and gif.stat().st_size > 0
