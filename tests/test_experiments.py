"""The experiment scripts run from a clean checkout (small settings)."""
import importlib.util
import json
from pathlib import Path

import jax
import pytest

REPO = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_greedy_lookahead_sweep_reproduces_the_default_greedy(tmp_path):
    """The 6-step row is the default greedy baseline, evaluated the same way as in every report."""
    from jaxmob.envs.rebalance.baselines import greedy, rollout
    from jaxmob.envs.rebalance.city import load
    from jaxmob.envs.rebalance import RebalanceConfig, RebalanceEnv

    out = tmp_path / "greedy.json"
    _script("greedy_lookahead").main(["--windows", "2,6", "--out", str(out)])
    rows = {r["lookahead_steps"]: r for r in json.loads(out.read_text())["rows"]}
    scenario = load("manhattan-citibike")
    env = RebalanceEnv(RebalanceConfig(mode="replay"))
    ratios = [float(rollout(greedy, env, env.make_params(scenario.city, days=[scenario.day(d)]),
                            jax.random.PRNGKey(0))["service_ratio"]) for d in scenario.test_days]
    assert rows[6]["service_ratio"] == pytest.approx(sum(ratios) / len(ratios), abs=1e-6)
    assert rows[2]["service_ratio"] != rows[6]["service_ratio"]


def test_algorithm_table_and_ablation_rows_from_a_clean_checkout(tmp_path):
    """Both scripts run end to end on a small city and report test days (argmax and sampled)
    beside the validation score; the table's greedy row has zero gap to greedy."""
    out = tmp_path / "algos"
    _script("rebalance_algos").main(["--quick", "--scenario", "manhattan-citibike", "--algs", "share_all",
                                     "--out", str(out)])
    results = json.loads(out.with_suffix(".json").read_text())
    row = results["algorithms"]["share_all"]
    assert set(row["per_day"]) == set(results["test_days"]) and len(row["argmax"]["service_ratio"]["per_seed"]) == 2
    assert not set(results["test_days"]) & set(results["validation_days"])
    table = _script("rebalance_algos").table(results)
    assert "| greedy (6-step look-ahead) | | " in table and "+0.0000" in table
    assert out.with_suffix(".png").exists()

    abl = tmp_path / "ablation"
    _script("hagps_ablation").main(["--quick", "--scenario", "manhattan-citibike", "--rows", "central",
                                    "--out", str(abl)])
    rows = json.loads(abl.with_suffix(".json").read_text())["rows"]
    assert rows["central"]["overrides"]["critic"] == "central"
    for r in rows.values():
        assert 0 < r["test"]["mean"] <= 1 and 0 < r["test_sampled"]["mean"] <= 1 and len(r["test"]["per_seed"]) == 2


def test_routing_table_and_fleet_sweep_from_a_clean_checkout(tmp_path):
    """Both routing scripts run end to end (tiny settings), resume from their JSON, and report the bars."""
    table = tmp_path / "table"
    policies = ["--policies", "ia_ra,rollout,rollout_phase_one,two_phase"]
    _script("routing_table").main(["--quick", "--scenario", "sf_cabspotting", *policies, "--out", str(table)])
    result = json.loads(table.with_suffix(".json").read_text())
    assert {r["policy"] for r in result["rows"]} == {"ia_ra", "rollout", "rollout_phase_one", "two_phase"}
    assert result["episodes"] == ["2008-06-04", "2008-06-05", "2008-06-06", "2008-06-07", "2008-06-08"]
    bar = result["bars"][0]
    assert bar["fleet"] == 6 and bar["speedup"] > 0 and {"wait_gap", "wait_gap_plain", "phase_one_buys"} <= set(bar)
    assert table.with_suffix(".png").exists()
    _script("routing_table").main(["--quick", "--scenario", "sf_cabspotting", *policies, "--out", str(table)])
    again = json.loads(table.with_suffix(".json").read_text())
    assert again["rows"] == result["rows"]  # every cell reused
    sweep = tmp_path / "sweep"
    _script("routing_fleet_sweep").main(["--quick", "--policies", "ia_ra", "--out", str(sweep)])
    rows = json.loads(sweep.with_suffix(".json").read_text())["rows"]
    assert [r["fleet"] for r in rows] == [4, 8] and all("growth" in r for r in rows)
    assert sweep.with_suffix(".png").exists()


def test_taxi_learners_table_resumes_and_judges_convergence(tmp_path, monkeypatch):
    """The taxi learners' script trains, scores validation per chunk, reports the bound, and
    keeps finished rows when rerun; the convergence test reads the curve's last fifth."""
    monkeypatch.chdir(tmp_path)  # its runs/ folder
    script = _script("taxi_learners")
    out = tmp_path / "learners"
    args = ["--quick", "--scenarios", "amod-nyc-man-north", "--learners", "madarl", "--out", str(out)]
    script.main(args)
    city = json.loads(out.with_suffix(".json").read_text())["cities"]["amod-nyc-man-north"]
    row = city["rows"]["madarl"]
    assert len(row["validation_curve"]) == 2 and len(row["validation_curve"][0]) == 2  # 2 seeds x 2 chunks
    assert [u in (2, 4) for u in row["best"]["update"]] == [True, True]  # each seed's best-on-validation chunk
    assert len(row["best"]["sampled"]["order_response_rate"]) == 2
    assert any(r["policy"].startswith("bound") for r in next(iter(city["baselines"].values())))
    table = script.table(json.loads(out.with_suffix(".json").read_text()))
    assert "| bound (clairvoyant LP) |" in table and "best-on-validation parameters (kept at update) |" in table
    assert row["over"] == "period" and "* |" not in table  # every row over the test period: none marked
    stamp = out.with_suffix(".json").stat().st_mtime_ns
    script.main(args)  # nothing left to train: the JSON is only read
    assert out.with_suffix(".json").stat().st_mtime_ns == stamp
    script.main(args + ["--table-only", "--rescore"])  # from the finished sweep's results.json: the same row
    again = json.loads(out.with_suffix(".json").read_text())["cities"]["amod-nyc-man-north"]["rows"]["madarl"]
    assert {k: again[k] for k in ("validation", "sampled", "argmax", "best")} == {k: row[k] for k in ("validation", "sampled", "argmax", "best")}
    flat, rise = script.converged([[0.5, 0.6, 0.7, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80, 0.80]])
    assert flat and abs(rise) < 1e-9
    flat, rise = script.converged([[0.5, 0.6, 0.7, 0.8, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0]])
    assert not flat and rise == pytest.approx(0.02)


def test_taxi_learners_runs_side_by_side_keep_each_others_rows(tmp_path):
    """Two runs of the script that loaded the JSON before either saved: each save writes its own
    row into the file as it is now, so neither takes back the other's row (or an older copy of it)."""
    script = _script("taxi_learners")
    path = tmp_path / "learners.json"
    city = {"scenario": "s", "fleet": 10, "test_days": ["d"], "baselines": {"d": []}, "rows": {"old": {"v": 0}}}
    path.write_text(json.dumps({"cities": {"s@10": city}}))
    first, second = json.loads(path.read_text()), json.loads(path.read_text())
    first["cities"]["s@10"]["rows"]["mappo"] = {"v": 1}
    first["cities"]["s@10"]["rows"]["old"] = {"v": 2}  # retrained by the first run
    script.save(first, path, {("s@10", "mappo"), ("s@10", "old")})
    held = second["cities"]["s@10"]  # the second run goes on filling the dict it holds
    held["rows"]["madarl"] = {"v": 3}
    script.save(second, path, {("s@10", "madarl")})
    rows = json.loads(path.read_text())["cities"]["s@10"]["rows"]
    assert rows == {"old": {"v": 2}, "mappo": {"v": 1}, "madarl": {"v": 3}}
    assert second["cities"]["s@10"] is held and held["rows"] == rows  # merged in place
    second["cities"]["s@12"] = {"scenario": "s", "fleet": 12, "rows": {}}  # a new city with its hand rules
    script.save(second, path, {("s@12", None)})
    assert set(json.loads(path.read_text())["cities"]) == {"s@10", "s@12"}
    assert not list(tmp_path.glob("*.tmp"))


def test_taxi_summaries_are_over_the_period_and_older_rows_are_marked():
    """A learned row's ORR and CI are the period's: summed served over summed orders of every
    test day's sampled episodes (a NumPy reference), not the mean of each day's rate; a row
    without `over` (trained before) is marked and compared with greedy's mean of days."""
    import numpy as np
    from jaxmob.train import sampled_summary

    rewards, learners = _script("taxi_rewards"), _script("taxi_learners")
    rng = np.random.default_rng(0)
    orders = {"d1": np.array([1000.0, 1010.0]), "d2": np.array([50.0, 52.0])}  # a busy day, a quiet one
    served = {"d1": orders["d1"] * [0.80, 0.82], "d2": orders["d2"]}  # the quiet day serves every order
    runs = {d: {"orders": orders[d], "served": served[d], "revenue": rng.uniform(1e4, 2e4, 2), "empty_km": np.ones(2),
                "order_response_rate": served[d] / orders[d]} for d in orders}
    test = {"sampled": sampled_summary(runs), **{k: float(np.mean([runs[d][k].mean() for d in runs])) for k in runs["d1"]}}
    run = {"tests": [test], "evals": [test], "curves": {"order_response_rate": [[0.5]]}}
    row = rewards.summary(run)
    total = lambda k: sum(runs[d][k].mean() for d in runs)
    assert row["over"] == "period"
    assert row["sampled"]["order_response_rate"] == [pytest.approx(total("served") / total("orders"))]  # 0.819, not 0.9
    assert np.isfinite(row["sampled"]["ci"][0])  # each day's CI would be infinite on the quiet day
    assert row["sampled"]["pcr"] == [pytest.approx(total("revenue") / 2 / 1e4)]
    greedy = {"policy": "greedy (demand gap)", "served": 80.0, "orders": 100.0, "revenue": 1e4, "empty_km": 0.0,
              "order_response_rate": 0.8, "ci": 0.05}
    quiet = {**greedy, "served": 10.0, "orders": 10.0, "order_response_rate": 1.0, "ci": float("inf")}
    city = {"test_days": ["d1", "d2"], "baselines": {"d1": [greedy], "d2": [quiet]}, "config": {"lr": 0.001},
            "rows": {"madarl": {**row, "converged": True, "last_fifth_rise": 0.0, "updates": 1}}}
    hand = rewards.hand_rows(city["baselines"], city["test_days"])["greedy (demand gap)"]
    assert hand["order_response_rate"] == pytest.approx(90 / 110) and hand["daily"]["order_response_rate"] == 0.9
    assert "* |" not in learners.table({"cities": {"c": city}})
    old = {k: v for k, v in row.items() if k != "over"}
    text = learners.table({"cities": {"c": {**city, "rows": {"madarl": {**old, "converged": True, "last_fifth_rise": 0.0}}}}})
    assert "| 0.8192 ± 0.0000* |" in text and "On greedy those read 0.9000 and inf" in text


def test_taxi_lr_scores_each_rate_on_validation_and_chooses_by_the_reward_rule(tmp_path, monkeypatch):
    """Every rate of the grid gets each seed's validation ORR and CI; the chosen rate has the best
    ORR averaged over the areas, and the CI decides only between rates within a seed std of it."""
    monkeypatch.chdir(tmp_path)  # its runs/ folder
    script = _script("taxi_lr")
    out = tmp_path / "lr.json"
    script.main(["--learner", "madarl", "--quick", "--lrs", "0.001,0.01", "--out", str(out)])
    scores = json.loads(out.read_text())["validation"]["amod-nyc-brooklyn"]
    assert set(scores) == {"0.001", "0.01"}
    assert all(len(v["order_response_rate"]) == len(v["ci"]) == 2 for v in scores.values())
    assert scores["0.001"]["order_response_rate"] != scores["0.01"]["order_response_rate"]

    def results(orr, ci):  # two areas, two seeds; per area and rate the seeds' ORR and CI
        return {"validation": {area: {lr: {"order_response_rate": [orr[lr] + d, orr[lr] - d], "ci": [ci[lr]] * 2}
                                      for lr in orr} for area, d in (("a", 0.001), ("b", 0.002))}}
    clear = results({"0.001": 0.95, "0.003": 0.97}, {"0.001": 30.0, "0.003": 10.0})
    assert "| **0.003** (chosen) |" in script.table(clear)  # better ORR wins whatever the CI
    tied = results({"0.001": 0.9695, "0.003": 0.97}, {"0.001": 30.0, "0.003": 10.0})
    assert "| **0.001** (chosen) |" in script.table(tied)  # 0.0005 apart, inside the 0.0015 seed std: CI decides


def test_parking_table_rules_and_bound_from_a_clean_checkout(tmp_path):
    """The rules and the bound on a small overloaded city, in tables that name every row
    (rules below the bound: tests/envs/test_parking_bound.py)."""
    from jaxmob.envs.parking.scenario import toy_scenario

    toy = toy_scenario(rate=4.0).save(tmp_path / "toy.npz")
    out = tmp_path / "parking"
    script = _script("parking_table")
    script.main(["--scenarios", str(toy), "--algs", "none", "--out", str(out), "--train-args", "episode_minutes=30"])
    results = json.loads(out.with_suffix(".json").read_text())
    rows = results["scenarios"][str(toy)]["table"]
    assert list(rows) == ["FIFO (oldest first, nearest free bay)", "SIRO (random order, nearest free bay)",
                          "longest-free facility first", "random facility", "SPT (shortest stay first, nearest free bay)",
                          "periphery first (FIFO, core bids -1)", "periphery first (SPT, core bids -1)",
                          "bound (clairvoyant assignment LP)"]
    assert all(len(r["success_rate_core_peak"]) == 5 for r in rows.values())  # the 5 test days
    text = script.table(results)
    assert "| bound (clairvoyant assignment LP) |" in text and "cbd peak: success / cruise / walk" in text
    assert out.with_suffix(".png").exists()
    bound = rows["bound (clairvoyant assignment LP)"]
    script.main(["--scenarios", str(toy), "--algs", "none", "--out", str(out), "--train-args", "episode_minutes=30"])
    again = json.loads(out.with_suffix(".json").read_text())["scenarios"][str(toy)]["table"]
    assert list(again) == list(rows)
    assert json.dumps(again["bound (clairvoyant assignment LP)"]) == json.dumps(bound)  # kept, not re-solved


def test_bound_zone_cuts_never_fall_below_the_exact_bound(tmp_path):
    """On a small AMoD area every zone cut (geometric and by traffic) is solved beside the
    exact LP, and none is below it (a relaxation); the table lists every cut."""
    out = tmp_path / "zones.json"
    script = _script("taxi_bound_zones")
    script.main(["--scenario", "amod-nyc-man-south", "--fleet", "0", "--zones", "2,8", "--exact", "--out", str(out)])
    results = json.loads(out.read_text())
    exact, *cuts = results["rows"]
    assert exact["cut"] == "exact" and [r["cut"] for r in cuts] == [
        "2 zones, geometric", "2 zones, by traffic", "8 zones, geometric", "8 zones, by traffic"]
    assert all(r["order_response_rate"] >= exact["order_response_rate"] - 1e-9 for r in cuts)
    assert all(0 < r["largest_zone_order_share"] <= 1 for r in results["rows"])
    assert script.table(results).count("\n| ") == 6


def test_actor_spread_reads_a_running_sweeps_checkpoint(tmp_path, capsys):
    """A `ddpg_dist` sweep on taxis stopped after one chunk leaves its checkpoint: there the
    idle taxis of one cell (one observation) share one stored distribution; the spread script
    reads the actor from it and prints the idle taxis' mean distribution (it sums to 1)."""
    import numpy as np
    import orbax.checkpoint as ocp

    from jaxmob.config import TrainConfig
    from jaxmob.sweep import run_sweep

    cfg = TrainConfig(env="taxi", alg="ddpg_dist", scenario="amod-nyc-brooklyn", num_taxis=300, total_updates=2,
                      updates_per_chunk=1, num_envs=1, rollout_steps=6, buffer_size=8, batch_size=2, gradient_steps=1,
                      hidden=(8,), progress=False)
    assert run_sweep(cfg, 2, {}, out_dir=str(tmp_path / "run"), progress=False, max_chunks=1) is None
    replay = ocp.StandardCheckpointer().restore(tmp_path / "run" / "checkpoint" / "1" / "state")["extra"]["replay"]
    n = int(replay["size"][0])
    obs, kept = np.asarray(replay["obs"][0, :n]), np.asarray(replay["action"][0, :n])  # seed 0
    stored = kept[..., kept.shape[-1] // 2:]  # beside each taxi's own one-hot, its cell's distribution
    np.testing.assert_allclose(stored.sum(-1), 1.0, atol=1e-5)
    assert np.all(stored.max(-1) < 1.0 - 1e-4)  # distributions, not one-hots
    shared = 0
    for o, a in zip(obs, stored):  # per transition: one observation, one distribution
        rows, inverse = np.unique(o, axis=0, return_inverse=True)
        for r in range(len(rows)):
            same = a[inverse.reshape(-1) == r]
            np.testing.assert_array_equal(same, np.broadcast_to(same[:1], same.shape))
            shared += len(same) > 1
    assert shared > 0  # some cells held several taxis
    script = _script("taxi_actor_spread")
    script.main([str(tmp_path / "run"), "--seed-index", "1", "--steps", "3"])
    out = capsys.readouterr().out
    assert "(ddpg_dist on amod-nyc-brooklyn), chunk 1, seed index 1" in out
    dist = [float(x) for x in out.split("neighbours):")[1].split("\n")[0].split()]
    assert len(dist) == 7 and sum(dist) == pytest.approx(1.0, abs=0.01)
    with pytest.raises(SystemExit, match="holds no checkpoint"):
        script.main([str(tmp_path / "nothing")])
