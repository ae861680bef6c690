"""MARL-GCN's parts: attention that respects the graph, the gated top-k readout, the hypernetwork
heads, the contrastive loss, and training through the off-policy core and the CLI."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmob.nets.gnn import NodeMLP, TwoStageGAT, gated_topk_readout
from jaxmob.nets.hypernet import HyperHead

NB = np.array([[1, 2], [0, 2], [1, 3], [2, 4], [3, 0]])  # 5 nodes, 2 neighbour slots each
MASK = np.array([[True, True], [True, False], [True, True], [True, False], [False, False]])
KIND = np.array([1, 1, 0, 0, 1])


def test_attention_reads_only_the_neighbourhood():
    x = jax.random.normal(jax.random.key(0), (5, 4))
    for layer in (TwoStageGAT(8), NodeMLP(8)):
        params = layer.init(jax.random.key(1), x, NB, MASK, KIND)
        base = layer.apply(params, x, NB, MASK, KIND)
        for j in range(5):
            moved = layer.apply(params, x.at[j].add(1.0), NB, MASK, KIND)
            changed = np.flatnonzero(np.abs(np.asarray(moved - base)).max(-1) > 1e-6)
            if isinstance(layer, TwoStageGAT):
                expect = [i for i in range(5) if i == j or any(NB[i, k] == j and MASK[i, k] for k in range(2))]
            else:
                expect = [j]
            assert list(changed) == expect, (type(layer).__name__, j, changed)


def test_gated_topk_readout_matches_numpy():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 7, 4)).astype(np.float32)
    gate = rng.random((3, 7)).astype(np.float32)
    kind = np.array([0, 1, 1, 0, 1, 1, 1])
    got = np.asarray(gated_topk_readout(jnp.asarray(h), jnp.asarray(gate), kind, 2, 3))
    for b in range(3):
        for c in range(2):
            idx = np.flatnonzero(kind == c)
            k = min(3, len(idx))
            top = idx[np.argsort(-gate[b, idx])[:k]]
            np.testing.assert_allclose(got[b, c], (gate[b, top, None] * h[b, top]).sum(0) / k, rtol=1e-5)


def test_hypernetwork_writes_a_head_per_agent():
    e = jnp.ones((2, 6))
    meta = jnp.stack([jnp.zeros(4), jnp.ones(4)])
    region = jnp.eye(3)[jnp.array([0, 0])]
    head = HyperHead(8, init_scale=1.0)
    params = head.init(jax.random.key(0), e, meta, region)
    out = head.apply(params, e, meta, region)
    assert out.shape == (2, 1) and abs(float(out[0, 0] - out[1, 0])) > 1e-4  # same embedding, other history
    same_meta = head.apply(params, e, jnp.zeros((2, 4)), jnp.eye(3)[jnp.array([0, 2])])
    assert abs(float(same_meta[0, 0] - same_meta[1, 0])) > 1e-4  # same history, other region


@pytest.fixture(scope="module")
def tiny():
    from jaxmob.envs.parking.env import ParkingConfig, ParkingEnv, make_params
    from jaxmob.envs.parking.scenario import toy_scenario

    env = ParkingEnv(ParkingConfig(horizon=20, random_start=True, max_arrivals=4, queue=6, history=2))
    return env, make_params(toy_scenario(), neighbours=3)


def test_contrastive_loss_is_an_infonce_over_request_subgraphs(tiny):
    env, params = tiny
    @jax.jit
    def warm(keys):  # a few minutes in, so requests are queued
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        for i in range(3):
            obs, state, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, i), state,
                                                                         jnp.zeros((8, 6)), params)
        return obs, jax.vmap(env.global_state, in_axes=(0, None))(state, params)

    obs, gstate = warm(jax.random.split(jax.random.key(0), 8))
    batch = {"obs": obs, "action": jnp.zeros((8, 6))}
    import dataclasses

    from jaxmob.core.registry import algorithm
    from jaxmob.config import TrainConfig

    config = TrainConfig(env="parking", alg="marl_gcn", hidden=(16,))
    with_cl = algorithm("marl_gcn").make_policy(env, params, config)
    without = algorithm("marl_gcn_no_cl").make_policy(env, params, dataclasses.replace(config, alg="marl_gcn_no_cl"))
    p = jax.jit(with_cl.init, static_argnums=(1, 2))(jax.random.key(2), obs.shape[-1], gstate.shape[-1])
    loss, grads = jax.jit(jax.value_and_grad(with_cl.aux_loss))(p["critic"], batch, jax.random.key(3))
    assert float(loss) > 0 and np.isfinite(float(loss))
    assert float(loss) <= with_cl.contrastive * np.log(8) * 1.5  # at most about log(batch) times the weight
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads["params"]["encoder"])) > 0
    assert float(without.aux_loss(p["critic"], batch, jax.random.key(3))) == 0.0
    q = jax.jit(with_cl.q)(p, obs, gstate, batch["action"])
    assert q.shape == (8, 6) and bool(jnp.all(jnp.isfinite(q)))


def test_critic_pools_the_top_k_or_every_facility(tmp_path):
    from jaxmob.config import TrainConfig
    from jaxmob.envs.parking.scenario import toy_scenario
    from jaxmob.train import build

    scenario = toy_scenario().save(tmp_path / "tiny.npz")
    for top_k, expected in ((3, 3), (0, None)):
        parts = build(TrainConfig(env="parking", alg="marl_gcn", scenario=str(scenario), critic_top_k=top_k,
                                  episode_minutes=20, validation_days=("val-0",), test_days=("test-0",)).validate())
        agents = parts["env"].num_agents(parts["env_params"])
        assert parts["policy"].top_k == (expected or agents)


def test_make_train_runs_marl_gcn_end_to_end(tmp_path):
    from jaxmob.cli import main
    from jaxmob.envs.parking.scenario import toy_scenario

    scenario = toy_scenario().save(tmp_path / "tiny.npz")
    run = tmp_path / "run"
    code = main(["train", "--env", "parking", "--alg", "marl_gcn", "--scenario", str(scenario), "--total-updates", "2",
                 "--updates-per-chunk", "1", "--episode-minutes", "20", "--num-envs", "2", "--rollout-steps", "5",
                 "--buffer-size", "32", "--batch-size", "8", "--gradient-steps", "1", "--hidden", "8",
                 "--eval-episodes", "1", "--validation-days", "val-0", "--test-days", "test-0,test-1",
                 "--out-dir", str(run), "--no-progress"])
    assert code == 0
    report = json.loads((run / "report.json").read_text())
    assert [r["policy"] for r in report["mean"]][:2] == ["marl_gcn (argmax)", "marl_gcn (sampled, 1 episodes)"]
    names = {r["policy"] for r in report["mean"]}
    assert {"FIFO (oldest first, nearest free bay)", "SIRO (random order, nearest free bay)",
            "bound (clairvoyant assignment LP)"} <= names
    assert report["days"] == ["test-0", "test-1"]
    assert (run / "learning_curve.png").exists() and (run / "checkpoints" / "best").exists()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(v) for r in rows for v in r.values())
    assert rows[-1]["critic_loss"] > 0 and rows[-1]["buffer_size"] == 20  # 2 updates x 2 envs x 5 steps
