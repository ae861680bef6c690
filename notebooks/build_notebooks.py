"""Writes the notebooks' source cells (run once; outputs come from executing them).

    python notebooks/build_notebooks.py && make notebooks
"""
import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell

ablation = nbf.v4.new_notebook()
ablation.cells = [
    md("# HAG-PS split/merge threshold ablation\n\n"
       "A grid of split thresholds `D_split` x merge thresholds `tau_merge` trained as **one vmapped program** "
       "(the thresholds are traced hyperparameters, so regrouping changes data, never shapes), then an "
       "identity-embedding ablation. `JAXMOB_NOTEBOOK_TINY=1` (the test suite) shrinks everything to seconds; "
       "the committed outputs come from the full configuration below: `manhattan-106` (the HAG-PS paper's regime: 108 "
       "regions, a scarce fleet), `levels` training demand, the default central critic. Settings are compared on the "
       "scenario's validation days, the only days that may choose a threshold; test days stay unseen."),
    code("import os, time\nimport numpy as np\nimport matplotlib.pyplot as plt\nimport jax\n"
         "from jaxmob.config import TrainConfig\nfrom jaxmob.sweep import run_sweep\n"
         "from jaxmob.train import build\nfrom jaxmob.nets.mlp import count_params\n\n"
         "TINY = os.environ.get('JAXMOB_NOTEBOOK_TINY') == '1'\n"
         "if TINY:\n"
         "    base = TrainConfig(alg='hagps', scenario='synthetic-square', total_updates=2, updates_per_chunk=2, num_envs=2,\n"
         "                       rollout_steps=24, horizon=24, window=12, epochs=1, minibatches=2, progress=False)\n"
         "    D_SPLIT, TAU_MERGE, ID_DIMS, SEEDS = [1.0, 4.0], [1.0], [4], 1\n"
         "else:\n"
         "    base = TrainConfig(alg='hagps', scenario='manhattan-106', total_updates=60, updates_per_chunk=10,\n"
         "                       num_envs=4, progress=False)\n"
         "    D_SPLIT, TAU_MERGE, ID_DIMS, SEEDS = [1.0, 2.0, 4.0], [0.25, 1.0], [0, 8, 32], 1\n"
         "base = base.validate()\nprint(base.scenario, base.total_updates, 'updates x', base.num_envs, 'envs')"),
    md("## D_split x tau_merge, one vmapped sweep"),
    code("t0 = time.perf_counter()\n"
         "out = run_sweep(base, SEEDS, {'d_split': D_SPLIT, 'tau_merge': TAU_MERGE}, out_dir='runs/notebook-split-merge', progress=False)\n"
         "print(f'{len(D_SPLIT) * len(TAU_MERGE) * SEEDS} runs in {time.perf_counter() - t0:.0f} s')\n"
         "curves, evals = out['curves'], out['evals']\n"
         "def grid(values):\n"
         "    # runs are ordered by (d_split, tau_merge, seed); average seeds\n"
         "    return np.asarray(values, float).reshape(len(D_SPLIT), len(TAU_MERGE), SEEDS).mean(-1)\n"
         "service = grid([e['service_ratio'] for e in evals])\n"
         "regroups = grid(curves['regroup_event'].mean(1))\n"
         "groups = grid(curves['local_groups'][:, -1])\n"
         "print('validation service ratio\\n', service.round(4))\nprint('final local groups\\n', groups)"),
    code("fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)\n"
         "for ax, data, title, fmt in zip(axes, (service, regroups, groups),\n"
         "                                ('validation service ratio', 'regroup events per update', 'local groups at the end'),\n"
         "                                ('.3f', '.2f', '.0f')):\n"
         "    im = ax.imshow(data, cmap='viridis', origin='lower')\n"
         "    ax.set_xticks(range(len(TAU_MERGE)), [f'{t:g}' for t in TAU_MERGE]); ax.set_xlabel('tau_merge')\n"
         "    ax.set_yticks(range(len(D_SPLIT)), [f'{d:g}' for d in D_SPLIT]); ax.set_ylabel('D_split')\n"
         "    for (i, j), v in np.ndenumerate(data):\n"
         "        ax.text(j, i, format(v, fmt), ha='center', va='center', color='w')\n"
         "    ax.set_title(title); plt.colorbar(im, ax=ax, shrink=0.8)\n"
         "plt.show()"),
    md("## Identity embedding size\n\nThe embedding size is a shape, so each size is its own run."),
    code("rows = []\nfor dim in ID_DIMS:\n"
         "    cfg = base.__class__(**{**base.__dict__, 'id_dim': dim}).validate()\n"
         "    res = run_sweep(cfg, SEEDS, {}, out_dir=f'runs/notebook-id-{dim}', progress=False)\n"
         "    parts = build(cfg)\n"
         "    env, p = parts['env'], parts['env_params']\n"
         "    n = count_params(parts['policy'].init(jax.random.PRNGKey(0), env.obs_dim(p), env.global_state_dim(p)))\n"
         "    rows.append((dim, n, float(np.mean([e['service_ratio'] for e in res['evals']]))))\n"
         "print('| id_dim | parameters | validation service ratio |')\nprint('|---|---|---|')\n"
         "for dim, n, svc in rows:\n    print(f'| {dim} | {n:,} | {svc:.4f} |')"),
    code("fig, ax = plt.subplots(figsize=(5, 3.5))\n"
         "ax.plot([r[0] for r in rows], [r[2] for r in rows], 'o-')\n"
         "ax.set_xlabel('identity embedding size'); ax.set_ylabel('validation service ratio'); ax.grid(alpha=0.3)\nplt.show()"),
]
nbf.write(ablation, "notebooks/split_merge_ablation.ipynb")

quick = nbf.v4.new_notebook()
quick.cells = [
    md("# jaxmob quickstart\n\nLoad a real scenario, look at it, replay a held-out day under the baselines, "
       "and step a thousand cities at once."),
    code("import jax, jax.numpy as jnp, numpy as np\nfrom jaxmob.envs.rebalance import city\n"
         "s = city.load('manhattan-citibike')\nprint(s)"),
    code("from jaxmob.envs.rebalance.plots import plot_city\nfrom IPython.display import Image\n"
         "Image(str(plot_city(s.city, 'runs/quickstart-map.png')))"),
    code("from jaxmob.envs.rebalance.evaluate import evaluate, format_table\n"
         "print(format_table(evaluate('manhattan-citibike', s.test_days[0])))"),
    code("from jaxmob.envs.rebalance import RebalanceEnv, RebalanceConfig\n"
         "env = RebalanceEnv(RebalanceConfig(mode='poisson'))\nparams = env.make_params(s.city)\n"
         "B = 1000\nscales = jnp.linspace(0.5, 1.5, B)\n"
         "batch = jax.vmap(lambda d: params.replace(demand_scale=d))(scales)\n"
         "obs, state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), B), batch)\n"
         "step = jax.jit(jax.vmap(env.step))\nfor t in range(6):\n"
         "    obs, state, reward, done, info = step(jax.random.split(jax.random.PRNGKey(t), B), state,\n"
         "                                          jnp.zeros((B, s.city.num_regions), jnp.int32), batch)\n"
         "print('fleet conserved:', bool(jnp.all(state.inventory.sum(1) + state.riding.sum((1, 2)) + state.relocating.sum((1, 2)) == s.city.fleet_size)))\n"
         "print('service ratio at demand x0.5 / x1.5:', float(state.metrics.fulfilled_service_ratio[0]), float(state.metrics.fulfilled_service_ratio[-1]))"),
]
nbf.write(quick, "notebooks/quickstart.ipynb")
