"""One routing episode drawn on the San Francisco street graph (`jaxmob render --env routing`).

Streets are grey; each taxi is a dot (green: carrying a passenger, blue: sent to a waiting
request, grey: free) with its path to where it is heading drawn along the streets (next hops);
red crosses are the requests waiting for a taxi. The title keeps a clock, the requests
waiting and the total wait so far (the headline, lower is better).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ...core.film import Film, clock, frame_axes, marker_legend
from ...core.geometry import project_km
from . import env as E
from .evaluate import LABELS, POLICIES, RoutingSetup, make_chunk, make_decide, start_state

STEP_SECONDS = 15.0  # the tables' step
STEPS = 240  # the real scenario's window: an hour


def film(scenario: str, graph, demand, episodes: list, start_minute: float, episode, policy) -> Film:
    """`episodes` of `scenario` (graph, demand) starting at `start_minute` of the day; `policy`: one
    of the planners (`evaluate.POLICIES`, default IA-RA). The episode's own seed places the fleet
    and seeds the planners' sampled futures, as in the tables."""
    policy = policy or "ia_ra"
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; this env's policies: {', '.join(POLICIES)}")
    names = [e.name for e in episodes]
    if episode is not None and episode not in names:
        raise ValueError(f"no episode {episode!r} of {scenario}; its episodes: {', '.join(names)}")
    chosen = episodes[names.index(episode)] if episode is not None else episodes[0]
    setup = RoutingSetup(steps=STEPS, chunk=STEPS)
    params = E.params_from(graph, demand)

    def record(s, targets, assigned):
        return dict(node=s.node, carrying=s.carrying, sent=s.assigned >= 0, goal=jnp.where(s.carrying, s.dest, targets),
                    pick=s.req_pick, live=s.req_live, wait=s.wait, delivered=s.delivered)

    chunk = make_chunk(make_decide(policy, graph, demand, params, setup), params, STEPS, record=record)
    arrivals = None if chosen.arrivals is None else tuple(jnp.asarray(a) for a in chosen.arrivals)
    _, (outstanding, rec) = chunk(start_state(graph, demand, setup, chosen.seed), jnp.int32(chosen.seed), arrivals)
    outstanding, rec = np.asarray(outstanding), {k: np.asarray(v) for k, v in rec.items()}
    xy = project_km(np.stack([graph.lat, graph.lon], axis=1))
    hop = graph.next_hop

    def path(a: int, b: int) -> np.ndarray:
        nodes = [a]
        while nodes[-1] != b and len(nodes) <= graph.num_nodes:
            nodes.append(int(hop[nodes[-1], b]))
        return xy[nodes]

    def draw(fig):
        from matplotlib.collections import LineCollection

        ax = fig.add_subplot()
        ax.add_collection(LineCollection(np.stack([xy[graph.src], xy[graph.dst]], axis=1), colors="0.85",
                                         linewidths=0.6, zorder=1))
        paths = LineCollection([], linewidths=1.4, alpha=0.8, zorder=2)
        ax.add_collection(paths)
        requests = ax.scatter([], [], marker="x", color="red", s=30, zorder=4)
        taxis = ax.scatter(xy[rec["node"][0], 0], xy[rec["node"][0], 1], s=40, edgecolors="black", linewidths=0.5,
                           zorder=5)
        frame_axes(ax, xy, 0.1)
        marker_legend(ax, {"taxi carrying a passenger": dict(marker="o", color="C2"),
                           "taxi sent to a request": dict(marker="o", color="C0"),
                           "free taxi": dict(marker="o", color="0.6"),
                           "request waiting": dict(marker="x", color="red")})
        heading = ax.set_title("", fontsize=9)

        def show(t: int) -> None:
            node, carrying, sent, goal = (rec[k][t] for k in ("node", "carrying", "sent", "goal"))
            colour = np.where(carrying[:, None], np.array([[0.17, 0.63, 0.17]]),
                              np.where(sent[:, None], np.array([[0.12, 0.47, 0.71]]), np.array([[0.6, 0.6, 0.6]])))
            taxis.set_offsets(xy[node])
            taxis.set_facecolors(colour)
            paths.set_segments([path(int(a), int(b)) for a, b in zip(node, goal) if a != b])
            paths.set_color([c for c, a, b in zip(colour, node, goal) if a != b])
            waiting = rec["pick"][t][rec["live"][t]]
            requests.set_offsets(xy[waiting] if len(waiting) else np.empty((0, 2)))
            heading.set_text(f"{scenario}, {chosen.name}, {LABELS[policy]}, {setup.fleet} taxis   "
                             f"{clock(start_minute + t * STEP_SECONDS / 60, seconds=True)}\n"
                             f"requests waiting {int(outstanding[t])}, total wait so far {int(rec['wait'][t])} steps, "
                             f"delivered {int(rec['delivered'][t])}")

        return show

    return Film(title=f"routing {scenario} {chosen.name} {policy}", steps=STEPS, draw=draw, records=rec)
