"""Cities: the `City` pytree, grids, real-data loaders and bundled scenarios."""
from .core import City, CityError, DayTrips, HEX_DIRECTIONS, SQUARE_DIRECTIONS, project_km
from .grid import neighbor_table, synthetic_city
from .scenarios import Scenario, available, load, sample_day
