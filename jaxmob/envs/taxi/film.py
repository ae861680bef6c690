"""One taxi episode drawn on the city's cells (`jaxmob render --env taxi`).

Each cell is coloured by its idle taxis at the start of the step, red circles are the orders
waiting there, arrows the idle taxis repositioning to a neighbouring cell, and the title keeps a
clock and the order response rate so far.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...core.film import Film, cell_patches, chosen, clock, flow_arrows, frame_axes, marker_legend, record_episode, \
    running_ratio
from .baselines import demand_gap, random_policy, stay

POLICIES = {"greedy": demand_gap, "stay": stay, "random": random_policy}


def film(built, episode, policy, seed: int = 0) -> Film:
    env, params = built.eval_env, built.episode(episode)
    city = built.scenario.city
    name, policy = chosen(POLICIES, policy)
    C = city.neighbors.shape[0]

    def record(state, action, info):
        idle = jnp.zeros((C,), jnp.int32).at[state.cell].add((params.taxi_mask & (state.busy == 0)).astype(jnp.int32))
        moves = jnp.zeros((C, 6), jnp.int32).at[state.cell, info["direction"]].add(info["moved"].astype(jnp.int32))
        return dict(idle=idle, waiting=state.waiting.sum(1), moves=moves, served=info["served"], orders=info["orders"])

    rec = record_episode(policy, env, params, jax.random.key(seed), record)
    response = running_ratio(rec["served"], rec["orders"])
    xy = city.xy_km
    real = np.asarray(city.neighbor_mask)
    src, dst = np.nonzero(real)[0], np.asarray(city.neighbors)[real]
    minutes = 24 * 60 / city.demand_rate.shape[0]
    day = built.episode_name(episode)
    most_idle = max(float(np.percentile(rec["idle"], 99)), 1.0)
    most_waiting = max(float(np.percentile(rec["waiting"], 99)), 1.0)

    def draw(fig):
        ax = fig.add_subplot()
        if city.hexagonal:
            cells = cell_patches(xy, city.cell_km, True, cmap="Blues", clim=(0, most_idle))
            ax.add_collection(cells)
        else:  # an AMoD area's regions: discs at their trip-distance layout
            cells = ax.scatter(xy[:, 0], xy[:, 1], s=500, c=np.zeros(C), cmap="Blues", vmin=0, vmax=most_idle,
                               edgecolors="grey", zorder=2)
        cells.set_array(np.zeros(C))
        fig.colorbar(cells, ax=ax, label="idle taxis", shrink=0.8)
        arrows = flow_arrows(ax, xy, src, dst, vmax=max(float(rec["moves"].max()), 1.0))
        waiting = ax.scatter(xy[:, 0], xy[:, 1], s=np.zeros(C), facecolors="none", edgecolors="red", linewidths=1.2,
                             zorder=5)
        frame_axes(ax, xy, city.cell_km, "km" if city.hexagonal else "km (trip-distance layout)")
        marker_legend(ax, {"orders waiting": dict(marker="o", markerfacecolor="none", markeredgecolor="red"),
                           "idle taxis repositioning": dict(marker=r"$\rightarrow$", color="C1", markersize=10)})
        heading = ax.set_title("", fontsize=9)

        def show(t: int) -> None:
            cells.set_array(rec["idle"][t])
            arrows(rec["moves"][t][real])
            waiting.set_sizes(400.0 * rec["waiting"][t] / most_waiting)
            heading.set_text(f"{city.name}, {day}, {name}   {clock((city.start_step + t) * minutes)}\n"
                             f"order response rate so far {response[t]:.3f}, taxis repositioning "
                             f"{int(rec['moves'][t].sum())}, orders waiting {int(rec['waiting'][t].sum())}")

        return show

    return Film(title=f"taxi {city.name} {day} {name}", steps=len(response), draw=draw, records=rec)
