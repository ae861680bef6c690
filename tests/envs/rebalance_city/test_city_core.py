"""City construction and validation: every malformed field is named in the error."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmob.envs.rebalance.city import City, CityError, DayTrips, neighbor_table, synthetic_city


def _fields(city: City) -> dict:
    keys = ("centroid", "xy_km", "cell", "neighbors", "neighbor_mask", "travel_steps", "relocation_steps",
            "demand_rate", "od_prob", "price", "init_inventory", "capacity", "features", "region_mask")
    out = {k: np.array(getattr(city, k)) for k in keys}
    out.update(name=city.name, region_ids=city.region_ids, grid=city.grid, grid_shape=city.grid_shape,
               cell_km=city.cell_km, step_minutes=city.step_minutes, od_bucket_steps=city.od_bucket_steps,
               directions=city.directions, feature_names=city.feature_names)
    return out


@pytest.fixture(scope="module")
def base():
    return _fields(synthetic_city("square", 3, 2, seed=1))


def test_valid_city_roundtrips(base):
    city = City.create(**base)
    assert city.num_regions == 6 and city.num_directions == 4 and city.steps_per_day == 144
    assert city.fleet_size == int(base["init_inventory"].sum())
    assert "6 regions" in repr(city)


@pytest.mark.parametrize("field, mutate, message", [
    ("od_prob", lambda a: a * 1.1, "od_prob: rows must sum to 1"),
    ("od_prob", lambda a: np.where(np.arange(a.shape[-1]) == 0, -a, a), "od_prob"),
    ("od_prob", lambda a: a[:, :, :-1], "od_prob: must have shape"),
    ("demand_rate", lambda a: -a, "demand_rate: must be non-negative"),
    ("demand_rate", lambda a: a[:-1], "demand_rate: needs one row per step of day"),
    ("demand_rate", lambda a: np.where(a > 0, np.nan, a), "demand_rate: contains NaN"),
    ("centroid", lambda a: np.full_like(a, np.nan), "centroid: contains NaN"),
    ("capacity", lambda a: np.zeros_like(a), "capacity: every real region needs at least one dock"),
    ("capacity", lambda a: a[:-1], "capacity: must have shape"),
    ("init_inventory", lambda a: a + 1000, "init_inventory: region"),
    ("init_inventory", lambda a: a - 1000, "init_inventory: must be non-negative"),
    ("init_inventory", lambda a: a + 0.5, "init_inventory: must hold whole numbers"),
    ("travel_steps", lambda a: a * 0, "travel_steps: must be >= 1"),
    ("neighbors", lambda a: a + 100, "neighbors: indices must lie in"),
    ("neighbor_mask", lambda a: a[:, :2], "neighbor_mask: must have shape"),
    ("features", lambda a: a[:-1], "features: must have shape"),
])
def test_validation_names_field(base, field, mutate, message):
    bad = dict(base)
    bad[field] = mutate(np.array(base[field]))
    with pytest.raises(CityError, match=message.replace("(", r"\(")):
        City.create(**bad)


def test_static_field_errors(base):
    with pytest.raises(CityError, match="step_minutes"):
        City.create(**{**base, "step_minutes": 7})
    with pytest.raises(CityError, match="region_ids"):
        City.create(**{**base, "region_ids": ("a",) * 6})
    with pytest.raises(CityError, match="feature_names"):
        City.create(**{**base, "feature_names": ("x",)})
    with pytest.raises(CityError, match="grid"):
        City.create(**{**base, "grid": "triangle"})


def test_padding_rules(base):
    mask = np.ones(6, bool)
    mask[-1] = False
    with pytest.raises(CityError, match="padding regions must have no inventory"):
        City.create(**{**base, "region_mask": mask})


def test_city_is_a_vmappable_pytree():
    cities = [synthetic_city("square", 4, 3, seed=s) for s in range(3)]
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *cities)
    fleets = jax.vmap(lambda c: c.init_inventory.sum())(batch)
    np.testing.assert_array_equal(np.asarray(fleets), [c.fleet_size for c in cities])
    # static metadata is aux data: jit sees it as a constant
    assert jax.jit(lambda c: c.init_inventory * c.steps_per_day)(cities[0]).shape == (12,)


def test_square_neighbors_are_compass_directions():
    cells = np.array([[0, 0], [1, 0], [0, 1], [2, 2]])
    nbr, mask = neighbor_table(cells, "square")
    # region 0 at (0,0): N is (0,1)=2, E is (1,0)=1, S and W missing
    assert nbr[0].tolist() == [2, 0, 1, 0] and mask[0].tolist() == [True, False, True, False]
    assert not mask[3].any()  # isolated cell


def test_hex_grid_has_six_neighbors_inside():
    city = synthetic_city("hex", 5, 5)
    assert city.num_directions == 6
    assert np.asarray(city.neighbor_mask).sum(1).max() == 6
    # neighbour relation is symmetric
    nbr, mask = np.asarray(city.neighbors), np.asarray(city.neighbor_mask)
    for r in range(city.num_regions):
        for j in nbr[r][mask[r]]:
            assert r in nbr[j][mask[j]]
    # hex neighbours are one cell width apart
    xy = np.asarray(city.xy_km)
    d = np.linalg.norm(xy[nbr] - xy[:, None], axis=-1)[mask]
    np.testing.assert_allclose(d, city.cell_km, rtol=1e-5)


def test_day_trips_validation():
    ok = DayTrips.create([0, 1], [1, 0], [5, 3], [6, 4], num_regions=2, steps_per_day=144)
    assert ok.depart_step.tolist() == [3, 5]  # canonical order
    with pytest.raises(CityError, match="arrive_step: must be later"):
        DayTrips.create([0], [1], [5], [5], num_regions=2, steps_per_day=144)
    with pytest.raises(CityError, match="origin: region indices"):
        DayTrips.create([2], [1], [5], [6], num_regions=2, steps_per_day=144)
    with pytest.raises(CityError, match="depart_step"):
        DayTrips.create([0], [1], [144], [150], num_regions=2, steps_per_day=144)
