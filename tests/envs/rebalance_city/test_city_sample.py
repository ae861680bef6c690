"""`sample_city`: jittable city distributions that pass `City.create` validation."""
import jax
import numpy as np
import pytest

from jaxmob.envs.rebalance.city import City
from jaxmob.envs.rebalance.city.grid import neighbor_table
from jaxmob.envs.rebalance.city.pad import city_fields, take_city
from jaxmob.envs.rebalance.city.sample import CitySpec, sample_cities, sample_city

SMALL = CitySpec(r_max=16, cols=(2, 4), rows=(2, 4), hotspots=(0, 2))


@pytest.fixture(scope="module")
def batch_4096():
    return sample_cities(jax.random.key(0), SMALL, 4096)


@pytest.fixture(scope="module", params=["square", "hex"])
def batch_by_grid(request):
    spec = CitySpec(r_max=30, grid=request.param, cols=(1, 6), rows=(1, 5), hotspots=(1, 3))
    return spec, sample_cities(jax.random.key(1), spec, 64)


def test_4096_cities_in_one_vmap(batch_4096):
    b = batch_4096
    assert b.region_mask.shape == (4096, 16)
    assert b.od_prob.shape == (4096, 24, 16, 16)
    assert b.demand_rate.shape == (4096, 144, 16)
    counts = np.asarray(b.region_mask).sum(axis=1)
    assert set(np.unique(counts)) == {a * c for a in range(2, 5) for c in range(2, 5)}  # every grid size drawn
    for leaf in jax.tree.leaves(b):
        assert np.all(np.isfinite(np.asarray(leaf, np.float64)))


def test_samples_vary(batch_4096):
    b = batch_4096
    assert len(np.unique(np.asarray(b.demand_rate).sum(axis=(1, 2)).round(3))) > 4000
    fleets = np.asarray(b.init_inventory).sum(axis=1)
    assert fleets.std() > 0
    assert len(np.unique(np.asarray(b.travel_steps).max(axis=(1, 2)))) > 1  # speeds vary


@pytest.mark.parametrize("index", [0, 1, 2, 17, 4095])
def test_round_trip_through_city_create(batch_4096, index):
    one = jax.tree.map(lambda x: np.asarray(x)[index], batch_4096)
    city = City.create(**city_fields(one))  # raises CityError on any invalid field
    for name in ("neighbors", "neighbor_mask", "travel_steps", "od_prob", "demand_rate", "init_inventory",
                 "capacity", "region_mask"):
        np.testing.assert_array_equal(np.asarray(getattr(city, name)), np.asarray(getattr(one, name)))
    assert city.steps_per_day == 144 and city.od_bucket_steps == 6


def test_padding_regions_are_inert(batch_by_grid):
    spec, b = batch_by_grid
    for i in range(0, 64, 7):
        c = take_city(b, i)
        pad = ~np.asarray(c.region_mask)
        real = ~pad
        n = real.sum()
        assert np.all(real[:n]) and not np.any(real[n:]), "real regions come first"
        assert np.all(np.asarray(c.capacity)[pad] == 0) and np.all(np.asarray(c.init_inventory)[pad] == 0)
        assert np.all(np.asarray(c.demand_rate)[:, pad] == 0)
        assert not np.any(np.asarray(c.neighbor_mask)[pad])
        od = np.asarray(c.od_prob)
        assert np.all(od[:, real][:, :, pad] == 0), "no trips to padding"
        np.testing.assert_allclose(od.sum(-1), 1.0, atol=1e-5)
        assert np.all(np.asarray(c.neighbors)[np.asarray(c.neighbor_mask)] < n)


def test_neighbours_match_the_numpy_grid_table(batch_by_grid):
    spec, b = batch_by_grid
    for i in range(0, 64, 5):
        c = take_city(b, i)
        real = np.asarray(c.region_mask)
        nbr, mask = neighbor_table(np.asarray(c.cell)[real], spec.grid)
        np.testing.assert_array_equal(np.asarray(c.neighbors)[real], nbr)
        np.testing.assert_array_equal(np.asarray(c.neighbor_mask)[real], mask)
    assert b.neighbors.shape[-1] == (4 if spec.grid == "square" else 6)


def test_commuting_peaks_and_capacity(batch_by_grid):
    spec, b = batch_by_grid
    rate = np.asarray(b.demand_rate).sum(axis=(0, 2))  # (T,) over all cities
    hour = np.arange(144) / 6.0
    night = rate[(hour >= 1) & (hour < 4)].mean()
    assert rate[(hour >= 7.5) & (hour < 9.5)].mean() > 3 * night
    assert rate[(hour >= 16.5) & (hour < 18.5)].mean() > 3 * night
    cap, inv, real = (np.asarray(x) for x in (b.capacity, b.init_inventory, b.region_mask))
    assert np.all(cap[real] >= 10) and np.all(cap[real] <= 40) and np.all(inv <= cap)
    fill = inv.sum(1) / cap.sum(1)
    assert fill.min() > 0.25 and fill.max() < 0.71


def test_jit_and_static_metadata():
    a = jax.jit(sample_city)(jax.random.key(3), SMALL)
    b = sample_city(jax.random.key(3), SMALL)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-6)
    assert a.name == "sampled" and a.grid_shape == (4, 4) and a.region_ids == tuple(range(16))


def test_single_region_and_no_hotspots():
    spec = CitySpec(r_max=3, cols=(1, 1), rows=(1, 1), hotspots=(0, 0))
    b = sample_cities(jax.random.key(2), spec, 8)
    for i in range(8):
        c = take_city(b, i)
        assert int(np.sum(c.region_mask)) == 1


@pytest.mark.parametrize("field, value, match", [
    ("grid", "tri", "CitySpec.grid"),
    ("cols", (3, 2), "CitySpec.cols"),
    ("rows", (0, 2), "CitySpec.rows"),
    ("rows", (1.5, 2), "CitySpec.rows"),
    ("r_max", 10, "CitySpec.r_max"),
    ("fill", (0.2, 1.5), "CitySpec.fill"),
    ("docks_per_region", (0, 5), "CitySpec.docks_per_region"),
    ("speed_kmh", (0.0, 5.0), "CitySpec.speed_kmh"),
    ("trips_per_region", (-1.0, 5.0), "CitySpec.trips_per_region"),
    ("gravity_exponent", (1.0, float("nan")), "CitySpec.gravity_exponent"),
    ("hotspots", 2, "CitySpec.hotspots"),
    ("step_minutes", 7, "CitySpec.step_minutes"),
    ("od_buckets", 25, "CitySpec.od_buckets"),
    ("cell_km", 0.0, "CitySpec.cell_km"),
])
def test_spec_validation_names_the_field(field, value, match):
    kw = dict(r_max=16, cols=(2, 4), rows=(2, 4))
    kw[field] = value
    with pytest.raises(ValueError, match=match):
        CitySpec(**kw)


def test_spec_accepts_lists_and_stays_hashable():
    spec = CitySpec(r_max=16, cols=[2, 4], rows=[2, 4])
    assert spec.cols == (2, 4)
    hash(spec)
