"""The deterministic-policy-gradient core: replay, a known control problem, a corridor city."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmob.algos.dpg import DPGConfig, DPGPolicy, Replay, dpg_hyper, make_train
from jaxmob.core.env import Agents, Environment, Spec
from jaxmob.nets import MLP


class Track(Environment):
    """Each of R agents sees a target in [-0.8, 0.8] and is paid -(a - target)^2; one-step
    episodes. The optimal deterministic policy is a = target, known in closed form."""

    R = 3

    def reset(self, key, params):
        target = jax.random.uniform(key, (self.R,), minval=-0.8, maxval=0.8)
        return self.observe(target, params), target

    def step(self, key, state, action, params):
        reward = -((action - state) ** 2)
        obs, nxt = self.reset(key, params)
        return obs, nxt, reward, jnp.bool_(True), {"err": jnp.abs(action - state).mean()}

    def observe(self, state, params):
        return jnp.concatenate([state[:, None], jnp.eye(self.R)], 1)

    def observation_spec(self, params):
        return Spec((self.R, 1 + self.R), jnp.float32)

    def action_spec(self, params):
        return Spec((self.R,), jnp.float32)

    def global_state(self, state, params):
        return state

    def agents(self, params):
        return Agents(jnp.ones(self.R, bool))

    @property
    def episode_length(self):
        return 1

    def episode_metrics(self, state, params):
        return {}

    def step_stats(self, info, reward, params):
        return {"reward": reward.sum(), "err": info["err"]}

    def training_metrics(self, sums, num_envs):
        return {"err": sums["err"]}


def test_replay_keeps_the_newest_transitions_in_a_ring():
    r = Replay.empty(5, (2, 1), 1)
    for k in range(4):  # 4 batches of 2 into 5 slots
        b = dict(obs=jnp.full((2, 2, 1), k), gstate=jnp.zeros((2, 1)), action=jnp.full((2, 2), 2 * k + jnp.arange(2)[:, None]),
                 reward=jnp.zeros((2, 2)), next_obs=jnp.zeros((2, 2, 1)), next_gstate=jnp.zeros((2, 1)),
                 done=jnp.zeros(2, bool))
        r = r.add(b)
    assert int(r.size) == 5 and int(r.insert) == 3
    np.testing.assert_array_equal(np.asarray(r.action[:, 0]), [5, 6, 7, 3, 4])  # slots 0-2 overwritten by 5, 6, 7


@pytest.mark.parametrize("alg", ["ddpg", "maddpg"])
def test_learns_the_known_optimal_policy_of_a_control_problem(alg):
    env = Track()
    policy = DPGPolicy({"ddpg": "independent", "maddpg": "central"}[alg], env.R, (32, 32))
    init, chunk = make_train(env, None, policy, DPGConfig(num_envs=16, rollout_steps=1, buffer_size=1024,
                                                         batch_size=64, gradient_steps=8))
    runner = jax.jit(init)(jax.random.key(0), dpg_hyper(lr=3e-3, gamma=0.0, tau=0.05, noise=0.3))
    runner, m = jax.jit(chunk, static_argnums=1)(runner, 150)
    targets = jnp.linspace(-0.8, 0.8, 9)
    obs = jax.vmap(lambda t: env.observe(jnp.full(env.R, t), None))(targets)
    err = np.abs(np.asarray(policy.action(runner.params, obs)) - np.asarray(targets)[:, None])
    assert err.max() < 0.1, err
    assert float(m["err"][-10:].mean()) < float(m["err"][:10].mean())


class Pick(Track):
    """Each agent sees which of A actions pays 1 this step (the others pay 0): discrete actions."""

    A = 4

    def reset(self, key, params):
        target = jax.random.randint(key, (self.R,), 0, self.A)
        return self.observe(target, params), target

    def step(self, key, state, action, params):
        reward = (action == state).astype(jnp.float32)
        obs, nxt = self.reset(key, params)
        return obs, nxt, reward, jnp.bool_(True), {"err": 1.0 - reward.mean()}

    def observe(self, state, params):
        return jnp.concatenate([jax.nn.one_hot(state, self.A), jnp.eye(self.R)], 1)

    def action_spec(self, params):
        return Spec((self.R,), jnp.int32, self.A)


def test_discrete_ddpg_learns_the_known_best_action_through_its_relaxed_one_hot():
    env = Pick()
    policy = DPGPolicy("independent", env.R, (32, 32), num_actions=env.A)
    init, chunk = make_train(env, None, policy, DPGConfig(num_envs=16, rollout_steps=1, buffer_size=512,
                                                         batch_size=64, gradient_steps=8))
    runner = jax.jit(init)(jax.random.key(0), dpg_hyper(lr=3e-3, gamma=0.0, tau=0.05, noise=0.3))
    runner, m = jax.jit(chunk, static_argnums=1)(runner, 100)
    # the replay keeps the one-hot of the action the env got
    stored = np.asarray(runner.extra.replay.action[:int(runner.extra.replay.size)])
    assert stored.shape[-1] == env.A and np.all(stored.sum(-1) == 1.0) and set(np.unique(stored)) == {0.0, 1.0}
    targets = jnp.arange(env.A)
    obs = jax.vmap(lambda t: env.observe(jnp.full(env.R, t), None))(targets)
    greedy = policy.act(runner.params, None, obs, None, jax.random.key(1), False)
    np.testing.assert_array_equal(np.asarray(greedy), np.broadcast_to(np.arange(env.A)[:, None], (env.A, env.R)))
    assert float(m["err"][-10:].mean()) < 0.5 * float(m["err"][:10].mean())  # starts near 3/4 wrong


@pytest.mark.parametrize("twin", [True, False], ids=["as-published", "one-critic"])
def test_soft_actor_critic_learns_the_known_softmax_of_its_q(twin):
    """On Pick with no discount every move's Q is 1 for the paying move and 0 for the others, so the
    soft actor's best policy is softmax(Q / alpha): the paying move gets e^(1/alpha) / (e^(1/alpha) + 3),
    0.711 at alpha = 0.5 and 0.475 at alpha = 1 (one compiled program: alpha is traced), and each of
    the twin critics learns Q."""
    env = Pick()
    policy = DPGPolicy("independent", env.R, (32, 32), num_actions=env.A, soft=True, twin=twin)
    init, chunk = make_train(env, None, policy, DPGConfig(num_envs=16, rollout_steps=1, buffer_size=512,
                                                         batch_size=64, gradient_steps=8))
    init, chunk = jax.jit(init), jax.jit(chunk, static_argnums=1)
    obs = jax.vmap(lambda t: env.observe(jnp.full(env.R, t), None))(jnp.arange(env.A))  # (A, R, O)
    paying = np.eye(env.A)[:, None, :]
    for alpha in (0.5, 1.0):
        runner = init(jax.random.key(0), dpg_hyper(lr=3e-3, gamma=0.0, tau=0.05, noise=0.3, entropy=alpha))
        runner, _ = chunk(runner, 150)
        best = np.exp(1 / alpha) / (np.exp(1 / alpha) + env.A - 1)
        pi = np.asarray(policy.action(runner.params, obs))
        np.testing.assert_allclose((pi * paying).sum(-1), best, atol=0.01)
        q = np.asarray(jax.vmap(lambda a: policy.q(runner.params, obs, None, jax.nn.one_hot(jnp.full(obs.shape[:2], a),
                                                                                           env.A)))(jnp.arange(env.A)))
        q = q if twin else q[:, None]
        assert q.shape == (env.A, 2 if twin else 1, env.A, env.R)  # (move, critic, paying move, agent)
        q = q.transpose(1, 2, 3, 0)
        np.testing.assert_allclose(q, np.broadcast_to(paying, q.shape), atol=0.1)  # each critic learns Q
    assert chunk._cache_size() == 1


class Rooms(Track):
    """Two groups of G agents, each agent seeing only its group; each picks one of two rooms of
    its group, and a room of capacity c chosen by n agents pays each min(1, c / n). Group 0's
    rooms hold (3/4, 1/4) of it, group 1's (1/4, 3/4): the group's best spread is its rooms'
    shares, while every agent's own best room is whichever the others crowd less."""

    G, A = 16, 2
    R = 2 * G
    CAP = np.array([[12.0, 4.0], [4.0, 12.0]])

    def reset(self, key, params):
        return self.observe(None, params), jnp.zeros(())

    def step(self, key, state, action, params):
        group = jnp.repeat(jnp.arange(2), self.G)
        chosen = jax.nn.one_hot(action, self.A)  # (R, A)
        crowd = jnp.stack([chosen[:self.G].sum(0), chosen[self.G:].sum(0)])  # (2, A) agents per room
        pay = jnp.minimum(1.0, jnp.asarray(self.CAP) / jnp.maximum(crowd, 1.0))
        reward = pay[group, action]
        return self.observe(None, params), state, reward, jnp.bool_(True), {"err": 1.0 - reward.mean()}

    def observe(self, state, params):
        return jnp.repeat(jnp.eye(2), self.G, axis=0)

    def distinct_observations(self, state, params):
        return jnp.eye(2), jnp.repeat(jnp.arange(2), self.G)

    def action_spec(self, params):
        return Spec((self.R,), jnp.int32, self.A)


def test_ddpg_on_a_shared_distribution_learns_the_groups_best_spread_where_the_one_hot_does_not():
    """The shared distribution lands on the rooms' shares; the relaxed one-hot, whose critic
    only sees one-hots, ends farther from them (its actor is pushed towards a corner)."""
    env = Rooms()
    best = env.CAP / env.G
    spread, kept = {}, None
    for shared in (True, False):
        policy = DPGPolicy("independent", env.R, (32, 32), num_actions=env.A, shared=shared)
        init, chunk = make_train(env, None, policy, DPGConfig(num_envs=16, rollout_steps=1, buffer_size=512,
                                                             batch_size=64, gradient_steps=8))
        runner = jax.jit(init)(jax.random.key(0), dpg_hyper(lr=3e-3, gamma=0.0, tau=0.05, noise=0.3))
        runner, m = jax.jit(chunk, static_argnums=1)(runner, 150)
        spread[shared] = np.asarray(policy.action(runner.params, jnp.eye(2)))
        if shared:
            kept = np.asarray(runner.extra.replay.action[:int(runner.extra.replay.size)])  # (N, R, 2A)
            assert float(m["err"][-10:].mean()) < float(m["err"][:10].mean())
    # the replay keeps each agent's own one-hot beside its group's distribution: one per group and transition
    own, stored = kept[..., :env.A], kept[..., env.A:]
    assert set(np.unique(own)) == {0.0, 1.0} and np.all(own.sum(-1) == 1.0)
    np.testing.assert_allclose(stored.sum(-1), 1.0, atol=1e-5)
    for g in (slice(0, env.G), slice(env.G, env.R)):
        np.testing.assert_allclose(stored[:, g], np.broadcast_to(stored[:, g][:, :1], stored[:, g].shape))
    assert np.all(stored.max(-1) < 1.0 - 1e-4)
    miss = {k: np.abs(v - best).max() for k, v in spread.items()}
    assert miss[True] < 0.05 < miss[False], spread


def test_exploration_noise_anneals_linearly_then_stays():
    from jaxmob.algos.dpg import annealed
    from jaxmob.config import ConfigError, TrainConfig

    values = [float(annealed(0.2, 0.1, u, 10)) for u in (0, 5, 10, 20)]
    assert values == pytest.approx([0.2, 0.11, 0.02, 0.02])
    assert float(annealed(0.2, 1.0, 7, 10)) == pytest.approx(0.2)  # the default: constant
    with pytest.raises((ConfigError, ValueError), match="exploration_final"):
        TrainConfig(env="amod", alg="ddpg", exploration_final=1.5).validate()


def test_the_soft_critics_are_twins_and_the_actor_reads_their_minimum():
    """Clipped double-Q: each critic's Q of a stored move (one per critic, also when the critics run
    once per distinct row), and the value the actor and the target read is sum_a p_a min(Q1, Q2)(o, a),
    the smaller critic per move, not either critic alone."""
    policy = DPGPolicy("independent", 6, (16,), num_actions=4, soft=True, twin=True)
    params = policy.init(jax.random.key(1), 5, 2)
    k_obs, k_p, k_a = jax.random.split(jax.random.key(2), 3)
    rows = jax.random.normal(k_obs, (3, 2, 5))  # 3 transitions, 2 distinct rows
    index = jnp.array([[0, 1, 1, 0, 1, 0]] * 3)
    obs = jnp.take_along_axis(rows, index[..., None], axis=1)  # (3, 6, 5): every agent its row
    both = np.asarray(jax.vmap(lambda c: MLP((16,), 4, out_scale=1.0).apply(c, obs))(params["critic"]))  # (2, 3, 6, 4)
    assert both.shape == (2, 3, 6, 4) and np.abs(both[0] - both[1]).max() > 1e-3  # two critics, apart
    one_hot = jax.nn.one_hot(jax.random.randint(k_a, (3, 6), 0, 4), 4)
    q = np.asarray(policy.q(params, obs, None, one_hot))
    np.testing.assert_allclose(q, (both * np.asarray(one_hot)).sum(-1), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(policy.q(params, rows, None, one_hot, index=index)), q, rtol=1e-6)
    p = jax.nn.softmax(jax.random.normal(k_p, (3, 6, 4)), -1)
    value = np.asarray(policy.value(params, obs, None, p))
    np.testing.assert_allclose(value, (np.asarray(p) * both.min(0)).sum(-1), rtol=1e-5)
    assert np.abs(value - (np.asarray(p) * both[0]).sum(-1)).max() > 1e-4
    one = DPGPolicy("independent", 6, (16,), num_actions=4, soft=True)  # the one-critic form reads its rows alike
    params = one.init(jax.random.key(1), 5, 2)
    np.testing.assert_allclose(np.asarray(one.q(params, rows, None, one_hot, index=index)),
                               np.asarray(one.q(params, obs, None, one_hot)), rtol=1e-6)


def test_discrete_actions_need_the_independent_critic():
    from jaxmob.config import ConfigError, TrainConfig
    with pytest.raises(ValueError, match="independent critic"):
        DPGPolicy("central", 3, num_actions=4)
    for kind in ("shared", "soft"):
        with pytest.raises(ValueError, match="needs discrete actions"):
            DPGPolicy("independent", 3, **{kind: True})
    with pytest.raises(ValueError, match="not both"):
        DPGPolicy("independent", 3, num_actions=4, shared=True, soft=True)
    with pytest.raises(ValueError, match="twin critics"):
        DPGPolicy("independent", 3, num_actions=4, twin=True)
    with pytest.raises((ConfigError, ValueError), match="entropy"):
        TrainConfig(env="taxi", alg="sac_discrete", entropy=-0.1).validate()


def test_continuous_core_refuses_discrete_envs():
    from jaxmob.envs.amod.env import AmodConfig, AmodEnv, make_params
    from jaxmob.envs.amod.scenario import load

    s = load("san_francisco")
    env = AmodEnv(AmodConfig(horizon=s.horizon, max_steps=s.max_steps, action="levels"))
    with pytest.raises(TypeError, match="continuous"):
        make_train(env, make_params(s), DPGPolicy("independent", s.num_regions), DPGConfig())


def corridor(tmp_path):
    """Three regions in a line; every request runs 0 -> 2, so without rebalancing the
    fleet piles up at the far end and region 0 goes unserved."""
    from jaxmob.envs.amod.scenario import AmodScenario, save

    S, R = 12, 3
    demand = np.zeros((S, R, R), np.float32)
    demand[:, 0, 2] = 3.0
    reb = np.abs(np.subtract.outer(np.arange(R), np.arange(R))).astype(np.int32)
    s = AmodScenario(name="corridor", source="test", tstep=3, start_minute=0, beta=0.1, demand_ratio=1.0,
                     fleet_hour=0, demand=demand, price=np.full((S, R, R), 10.0, np.float32),
                     trip_steps=np.full((S, R, R), 2, np.int32), reb_steps=reb,
                     init_idle=np.array([4, 4, 4], np.int32), horizon=10)
    save(s, tmp_path / "corridor.npz")
    return str(tmp_path / "corridor.npz")


def corridor_config(tmp_path, **kw):
    from jaxmob.config import TrainConfig

    common = dict(env="amod", alg="meta", scenario=corridor(tmp_path), total_updates=100, updates_per_chunk=25,
                  num_envs=8, rollout_steps=10, batch_size=128, buffer_size=4096, gradient_steps=20, lr=1e-3,
                  gamma=0.9, exploration_noise=0.5, eval_episodes=2, progress=False,
                  options={"xi": 0.1, "reward": "profit"},
                  out_dir=str(tmp_path / "run"))
    return TrainConfig(**{**common, **kw})


def test_meta_learns_to_rebalance_the_corridor(tmp_path):
    from jaxmob.train import train

    full = train(corridor_config(tmp_path), log=lambda *a: None)
    no_reb = next(r for r in _baselines(full) if r["policy"] == "no rebalancing")
    assert full["test"]["reward"] > 1.3 * no_reb["reward"], (full["test"]["reward"], no_reb)
    assert full["test"]["rebalanced"] > 0


def test_maddpg_resumes_exactly_replay_buffer_included(tmp_path):
    from jaxmob.train import train

    small = dict(alg="maddpg", total_updates=6, updates_per_chunk=3, batch_size=32)
    full = train(corridor_config(tmp_path, **small, out_dir=str(tmp_path / "full")), log=lambda *a: None)
    cut = corridor_config(tmp_path, **small, out_dir=str(tmp_path / "cut"))
    train(cut, max_chunks=1, log=lambda *a: None)
    resumed = train(cut, resume=True, log=lambda *a: None)
    assert int(full["runner"].extra.replay.size) == 6 * 8 * 10 and float(full["runner"].opt_state["critic"][1].count) > 0
    for a, b in zip(jax.tree.leaves(full["runner"]), jax.tree.leaves(resumed["runner"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # replay buffer and targets included
    assert resumed["test"] == full["test"]


def _baselines(summary):

    parts = summary["parts"]
    rows = parts["task"].baseline_rows(parts["scenario"], parts["task"].episodes(parts["scenario"], ["test-2000"]),
                                       _config(summary), bound=False)
    return rows["test-2000"]


def _config(summary):
    from jaxmob.config import TrainConfig

    c = dict(summary["config"])
    return TrainConfig(env=c.pop("env"), options=c.pop("options"), **{k: tuple(v) if isinstance(v, list) else v
                                                                       for k, v in c.items()})


def test_a_sweep_over_polyak_rates_is_one_program(tmp_path):
    from jaxmob.sweep import run_sweep

    cfg = corridor_config(tmp_path, total_updates=2, updates_per_chunk=2, batch_size=32)
    out = run_sweep(cfg, 2, {"tau": [0.01, 0.1]}, out_dir=str(tmp_path / "sweep"), progress=False)
    assert len(out["evals"]) == 4 and all(np.isfinite(e["reward"]) for e in out["evals"])
    with pytest.raises(ValueError, match="cannot sweep 'ent_coef' of meta"):
        run_sweep(cfg, 1, {"ent_coef": [0.0]}, progress=False)
