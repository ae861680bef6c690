"""`pad_city` / `stack_cities`: padding keeps every real-region field identical."""
import jax
import numpy as np
import pytest

from jaxmob.envs.rebalance.city import City, synthetic_city
from jaxmob.envs.rebalance.city.pad import ARRAY_FIELDS, city_fields, pad_city, stack_cities, take_city
from jaxmob.envs.rebalance.city.sample import CitySpec, sample_cities

# How many leading axes index regions, per field (the rest index time buckets etc.).
REGION_AXES = {"centroid": (0,), "xy_km": (0,), "cell": (0,), "neighbors": (0,), "neighbor_mask": (0,),
               "travel_steps": (0, 1), "relocation_steps": (0, 1), "demand_rate": (1,), "od_prob": (1, 2),
               "price": (0, 1), "init_inventory": (0,), "capacity": (0,), "features": (0,), "region_mask": (0,)}


def real_part(x: np.ndarray, axes, n: int) -> np.ndarray:
    index = [slice(None)] * x.ndim
    for a in axes:
        index[a] = slice(0, n)
    return x[tuple(index)]


@pytest.fixture(params=["square", "hex", "sampled"])
def city(request):
    if request.param == "sampled":
        return take_city(sample_cities(jax.random.key(4), CitySpec(r_max=20, cols=(3, 4), rows=(3, 4)), 2), 1)
    return synthetic_city(request.param, 4, 3, seed=2)


def test_pad_keeps_real_fields_identical(city):
    R = city.num_regions
    padded = pad_city(city, R + 7)
    assert padded.num_regions == R + 7
    for name in ARRAY_FIELDS:
        a, b = np.asarray(getattr(city, name)), np.asarray(getattr(padded, name))
        np.testing.assert_array_equal(real_part(b, REGION_AXES[name], R), a, err_msg=name)
    assert padded.region_ids[:R] == city.region_ids
    assert len(set(padded.region_ids)) == R + 7
    for name in ("name", "grid", "grid_shape", "cell_km", "step_minutes", "steps_per_day", "od_bucket_steps",
                 "directions", "feature_names"):
        assert getattr(padded, name) == getattr(city, name)
    assert padded.fleet_size == city.fleet_size and padded.trips_per_day == city.trips_per_day


def test_padding_regions_are_inert(city):
    R = city.num_regions
    padded = pad_city(city, R + 5)
    new = slice(R, R + 5)
    assert not np.any(np.asarray(padded.region_mask)[new])
    assert not np.any(np.asarray(padded.capacity)[new]) and not np.any(np.asarray(padded.init_inventory)[new])
    assert not np.any(np.asarray(padded.demand_rate)[:, new]) and not np.any(np.asarray(padded.neighbor_mask)[new])
    od = np.asarray(padded.od_prob)
    assert not np.any(od[:, :R, new]), "no real trip ends in padding"
    np.testing.assert_array_equal(od[:, new, new], np.broadcast_to(np.eye(5), (od.shape[0], 5, 5)))
    np.testing.assert_array_equal(np.asarray(padded.neighbors)[new], np.repeat(np.arange(R, R + 5)[:, None],
                                                                              city.num_directions, axis=1))


def test_pad_to_same_size_and_errors(city):
    same = pad_city(city, city.num_regions)
    for name in ARRAY_FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(same, name)), np.asarray(getattr(city, name)))
    with pytest.raises(ValueError, match="r_max"):
        pad_city(city, city.num_regions - 1)


def test_pad_ids_avoid_collisions():
    c = synthetic_city("square", 2, 1)
    c = City.create(**{**city_fields(c), "region_ids": ("pad0", "x")})
    assert pad_city(c, 4).region_ids == ("pad0", "x", "pad1", "pad2")


def test_stack_cities_pads_to_largest():
    cities = [synthetic_city("square", 2, 2, seed=0), synthetic_city("square", 4, 3, seed=1),
              synthetic_city("square", 3, 3, seed=2)]
    batch = stack_cities(cities)
    assert batch.init_inventory.shape == (3, 12) and batch.od_prob.shape == (3, 24, 12, 12)
    assert batch.region_ids == tuple(range(12)) and batch.grid_shape == (4, 3)
    np.testing.assert_array_equal(np.asarray(batch.region_mask).sum(1), [4, 12, 9])
    for i, c in enumerate(cities):
        one = take_city(batch, i)  # validated
        R = c.num_regions
        for name in ARRAY_FIELDS:
            np.testing.assert_array_equal(real_part(np.asarray(getattr(one, name)), REGION_AXES[name], R),
                                          np.asarray(getattr(c, name)), err_msg=name)
    # a batch vmaps (identical static metadata across cities)
    totals = jax.vmap(lambda c: c.demand_rate.sum())(jax.tree.map(np.asarray, batch))
    np.testing.assert_allclose(np.asarray(totals), [c.trips_per_day for c in cities], rtol=1e-5)


def test_stack_cities_refuses_mixed_grids():
    with pytest.raises(ValueError, match="grid"):
        stack_cities([synthetic_city("square", 2, 2), synthetic_city("hex", 2, 2)])
    with pytest.raises(ValueError, match="step_minutes"):
        stack_cities([synthetic_city("square", 2, 2), synthetic_city("square", 2, 2, step_minutes=15)])
    with pytest.raises(ValueError, match="at least one"):
        stack_cities([])

