"""One AMoD episode drawn on the area's regions (`jaxmob render --env amod`).

The benchmark's regions have no coordinates, only travel times, so they are laid out by
classical scaling of the rebalancing times (near in the picture = near in minutes). Each region
is coloured by its idle vehicles before the rebalancing decision, arrows are the empty vehicles
sent between regions, red circles the requests the last matching left unserved, and the title
keeps a clock and the share of requests served so far.
"""
from __future__ import annotations

import jax
import numpy as np

from ...core.film import Film, chosen, classical_mds, clock, flow_arrows, frame_axes, marker_legend, record_episode, \
    running_ratio
from .baselines import equal_distribution, no_rebalancing

POLICIES = {"equal_distribution": equal_distribution, "no_rebalancing": no_rebalancing}


def film(env, built, episode, policy, seed: int = 0) -> Film:
    params = built.episode(episode)
    scenario = built.scenario
    name, policy = chosen(POLICIES, policy)

    def record(state, action, info):
        return dict(idle=state.idle, unmet=state.unmet, moves=info["moves"], served=info["served"],
                    requests=info["requests"])

    rec = record_episode(policy, env, params, jax.random.key(seed), record)
    served = running_ratio(rec["served"], rec["requests"])
    minutes = np.asarray(scenario.reb_steps, float) * scenario.tstep
    xy = classical_mds(minutes)
    R = len(xy)
    src, dst = np.nonzero(~np.eye(R, dtype=bool))
    day = built.episode_name(episode)
    most_idle = max(float(rec["idle"].max()), 1.0)
    most_unmet = max(float(rec["unmet"].max()), 1.0)

    def draw(fig):
        ax = fig.add_subplot()
        regions = ax.scatter(xy[:, 0], xy[:, 1], s=500, c=np.zeros(R), cmap="Blues", vmin=0, vmax=most_idle,
                             edgecolors="grey", zorder=2)
        fig.colorbar(regions, ax=ax, label="idle vehicles", shrink=0.8)
        arrows = flow_arrows(ax, xy, src, dst, vmax=max(float(rec["moves"].max()), 1.0))
        unmet = ax.scatter(xy[:, 0], xy[:, 1], s=np.zeros(R), facecolors="none", edgecolors="red", linewidths=1.2,
                           zorder=5)
        frame_axes(ax, xy, 0.08 * np.ptp(xy), "minutes (travel-time layout)")
        marker_legend(ax, {"requests left unserved": dict(marker="o", markerfacecolor="none", markeredgecolor="red"),
                           "vehicles rebalancing": dict(marker=r"$\rightarrow$", color="C1", markersize=10)})
        heading = ax.set_title("", fontsize=9)

        def show(t: int) -> None:
            regions.set_array(rec["idle"][t])
            arrows(rec["moves"][t][src, dst])
            unmet.set_sizes(400.0 * rec["unmet"][t] / most_unmet)
            heading.set_text(f"{scenario.name}, {day}, {name}   {clock(scenario.start_minute + t * scenario.tstep)}\n"
                             f"served so far {served[t]:.3f}, vehicles rebalancing {int(rec['moves'][t].sum())}, "
                             f"idle {int(rec['idle'][t].sum())}")

        return show

    return Film(title=f"amod {scenario.name} {day} {name}", steps=len(served), draw=draw, records=rec, fps=2.0)
