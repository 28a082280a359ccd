import numpy as np
import pytest

from builders import REPO
from curation.policy.params import load_params
from curation.policy.zones import Zones

SQUARES = {
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "id": "a", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]}},
        {"type": "Feature", "id": "b", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[1, 1], [3, 1], [3, 3], [1, 3], [1, 1]]]}},
    ],
}


@pytest.mark.parametrize(
    "lat, lon, expected",
    [(0.5, 0.5, "a"), (1.5, 1.5, "a"), (2.5, 2.5, "b"), (5, 5, None), (float("nan"), 1, None), (0.5, 2.5, None)],
)
def test_zone_at(lat, lon, expected):
    assert Zones.from_geojson(SQUARES).zone_at(lat, lon) == expected


def test_vectorized_lookup_matches_single_lookups():
    zones = Zones.from_geojson(SQUARES)
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-1, 4, 500), rng.uniform(-1, 4, 500)
    assert list(zones.zones_at(lat, lon)) == [zones.zone_at(a, o) for a, o in zip(lat, lon)]


def test_example_zones_lie_inside_their_region_and_are_marked_fictional():
    params = load_params(REPO / "params.yaml")
    for name, region in params.regions.items():
        zones = region.zones
        assert zones.ids, name
        for geometry in zones.geometries:
            centre = geometry.centroid
            assert region.territory.zone_at(centre.y, centre.x) == name
        assert "fictional" in (region.restricted_zones.file.read_text()).lower()
    lat, lon = params.regions["cn"].locale.origin
    assert params.regions["cn"].territory.zone_at(lat, lon) == "cn"
    assert params.regions["eu"].territory.zone_at(lat, lon) is None
