"""One parking day drawn on the Melbourne map (`jaxmob render --env parking`).

Each facility is a disc (area by its bays) coloured by the share of its bays taken; the
optimised core's facilities have a black rim. Orange rings are the vehicles cruising for a bay
(queued requests, at the facility nearest their destination) and blue dots the vehicles
driving to a bay they were given. The title keeps a clock and the parking success so far,
overall and in the core.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ...core.film import Film, chosen, clock, frame_axes, marker_legend, record_episode, running_ratio
from ...core.geometry import project_km
from .baselines import BASELINES
from .env import RULE_LABELS

# name -> (the rule set as `static_rule`, the core's policy), the baseline rows by short names
POLICIES = {**{rule: BASELINES[label] for rule, label in RULE_LABELS.items()},
            "periphery_first": BASELINES["periphery first (FIFO, core bids -1)"]}


def film(env, built, episode, policy, seed: int = 0, params_for=None) -> Film:
    """`params_for(rule)`: the episode's params with the hand rule `rule` (a named policy's)."""
    name, chosen_policy = chosen(POLICIES, policy)
    if callable(policy):
        params, act = built.episode(episode), chosen_policy
    else:
        rule, act = chosen_policy
        params = params_for(rule)
    scenario = built.scenario
    F = scenario.num_facilities

    def record(state, action, info):
        cruising = jnp.zeros((F,), jnp.int32).at[state.queue.dest].add(state.queue.valid.astype(jnp.int32))
        return dict(free=state.free, cruising=cruising, en_route=state.en_route, parked=info["parked"],
                    failed=info["failed"], parked_core=info["parked_core"], failed_core=info["failed_core"])

    rec = record_episode(act, env, params, jax.random.key(seed), record)
    success = running_ratio(rec["parked"], rec["parked"] + rec["failed"])
    core = running_ratio(rec["parked_core"], rec["parked_core"] + rec["failed_core"])
    capacity = np.maximum(np.asarray(scenario.capacity), 1)
    xy = project_km(np.stack([scenario.lat, scenario.lon], axis=1))
    optimised = np.asarray(scenario.region) < 2
    most = max(float(np.percentile(rec["cruising"] + rec["en_route"], 99.5)), 1.0)
    day = built.episode_name(episode)

    def draw(fig):
        ax = fig.add_subplot()
        facilities = ax.scatter(xy[:, 0], xy[:, 1], s=6.0 * np.sqrt(capacity), c=np.zeros(F), cmap="RdYlGn_r",
                                vmin=0, vmax=1, edgecolors=np.where(optimised, "black", "none"), linewidths=0.6,
                                zorder=2)
        fig.colorbar(facilities, ax=ax, label="share of bays taken", shrink=0.8)
        cruising = ax.scatter(xy[:, 0], xy[:, 1], s=np.zeros(F), facecolors="none", edgecolors="C1", linewidths=1.2,
                              zorder=4)
        driving = ax.scatter(xy[:, 0], xy[:, 1], s=np.zeros(F), color="C0", alpha=0.6, zorder=3)
        frame_axes(ax, xy, 0.1)
        marker_legend(ax, {"cruising for a bay": dict(marker="o", markerfacecolor="none", markeredgecolor="C1"),
                           "driving to a given bay": dict(marker="o", color="C0", alpha=0.6),
                           "core facility (optimised)": dict(marker="o", markerfacecolor="white", markeredgecolor="black")})
        heading = ax.set_title("", fontsize=9)

        def show(t: int) -> None:
            facilities.set_array(1.0 - rec["free"][t] / capacity)
            cruising.set_sizes(200.0 * rec["cruising"][t] / most)
            driving.set_sizes(200.0 * rec["en_route"][t] / most)
            heading.set_text(f"{scenario.name}, {day}, {name}   {clock(scenario.day_start + t)}\n"
                             f"success so far {success[t]:.3f} (core {core[t]:.3f}), cruising "
                             f"{int(rec['cruising'][t].sum())}, driving to a bay {int(rec['en_route'][t].sum())}")

        return show

    return Film(title=f"parking {scenario.name} {day} {name}", steps=len(success), draw=draw, records=rec, fps=12.0)
