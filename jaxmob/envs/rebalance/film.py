"""One bike-sharing day drawn on the city's grid (`jaxmob render --env rebalance`).

Each region is coloured by the share of its docks holding bikes, arrows show the bikes
relocated in the step (region to neighbour), red circles the trips that found no bike, and
the title keeps a clock and the fulfilled service ratio so far.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...core.film import Film, chosen, clock, flow_arrows, frame_axes, marker_legend, record_episode, running_ratio
from .baselines import greedy, noop, random_policy

POLICIES = {"greedy": greedy, "noop": noop, "random": random_policy}


def film(built, episode, policy, seed: int = 0) -> Film:
    env, params = built.eval_env, built.episode(episode)
    city = built.scenario.city
    name, policy = chosen(POLICIES, policy)
    levels = len(env.config.move_amounts)

    def record(state, action, info):
        direction = jnp.clip((action - 1) // levels, 0, None)
        moved = jax.nn.one_hot(direction, city.neighbors.shape[1], dtype=jnp.int32) * info["relocated"][:, None]
        return dict(inventory=state.inventory, moved=moved, unserved=info["unserved"],
                    served=info["served"].sum(), demand=info["demand"].sum())

    rec = record_episode(policy, env, params, jax.random.key(seed), record)
    service = running_ratio(rec["served"], rec["demand"])
    mask = np.asarray(city.region_mask)
    xy = np.asarray(city.xy_km)
    capacity = np.maximum(np.asarray(city.capacity), 1)
    nbr, nbr_mask = np.asarray(city.neighbors), np.asarray(city.neighbor_mask) & mask[:, None]
    src, dst = np.nonzero(nbr_mask)[0], nbr[nbr_mask]
    day = built.episode_name(episode)

    def draw(fig):
        from .plots import _cells

        ax = fig.add_subplot()
        cells = _cells(city, np.zeros(len(xy)), cmap="YlGnBu", clim=(0, 1))
        ax.add_collection(cells)
        fig.colorbar(cells, ax=ax, label="docks holding a bike", shrink=0.8)
        arrows = flow_arrows(ax, xy, src, dst, vmax=max(float(rec["moved"].max()), 1.0))
        unmet = ax.scatter(xy[mask, 0], xy[mask, 1], s=np.zeros(mask.sum()), facecolors="none", edgecolors="red",
                           linewidths=1.2, zorder=5)
        frame_axes(ax, xy[mask], city.cell_km)
        marker_legend(ax, {"trips that found no bike": dict(marker="o", markerfacecolor="none", markeredgecolor="red"),
                           "bikes relocated": dict(marker=r"$\rightarrow$", color="C1", markersize=10)})
        heading = ax.set_title("", fontsize=9)

        def show(t: int) -> None:
            cells.set_array((rec["inventory"][t] / capacity)[mask])
            arrows(rec["moved"][t][nbr_mask])
            unmet.set_sizes(25.0 * rec["unserved"][t][mask])
            heading.set_text(f"{city.name}, {day}, {name}   {clock(t * city.step_minutes)}\n"
                             f"service ratio so far {service[t]:.3f}, bikes relocated this step {int(rec['moved'][t].sum())}")

        return show

    return Film(title=f"rebalance {city.name} {day} {name}", steps=len(service), draw=draw, records=rec)
