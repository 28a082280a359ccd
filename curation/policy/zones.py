"""Geofences: restricted zones and region boundaries from GeoJSON, queried per frame.

Lookups go through an STRtree of prepared polygons, vectorized over whole position tracks, so
checking every frame of every clip costs microseconds per frame.

Example:
    >>> zones = Zones.from_geojson({"type": "FeatureCollection", "features": [{"type": "Feature",
    ...     "id": "z1", "properties": {}, "geometry": {"type": "Polygon",
    ...     "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}}]})
    >>> zones.zone_at(0.5, 0.5), zones.zone_at(2.0, 2.0)
    ('z1', None)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

__all__ = ["Zones", "load_zones", "coarsen"]

METRES_PER_DEG = 111_320.0


@dataclass(frozen=True)
class Zones:
    """Named polygons (lon/lat, as GeoJSON orders them) with a spatial index."""

    ids: tuple[str, ...]
    geometries: tuple[shapely.Geometry, ...]
    _tree: shapely.STRtree = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if len(self.ids) != len(self.geometries):
            raise ValueError(f"ids ({len(self.ids)}) and geometries ({len(self.geometries)}) differ in length")
        for geometry in self.geometries:
            shapely.prepare(geometry)
        object.__setattr__(self, "_tree", shapely.STRtree(list(self.geometries)))

    @classmethod
    def from_geojson(cls, document: dict) -> "Zones":
        """Read a FeatureCollection of Polygon/MultiPolygon features; raise ValueError saying what is wrong."""
        if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
            raise ValueError("expected a GeoJSON FeatureCollection")
        features = document.get("features")
        if not isinstance(features, list):
            raise ValueError("'features' must be a list")
        ids, geometries = [], []
        for n, feature in enumerate(features):
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise ValueError(f"features[{n}] is not a GeoJSON Feature")
            try:
                geometry = shape(feature.get("geometry") or {})
            except Exception as error:  # shapely raises several types for malformed geometry
                raise ValueError(f"features[{n}].geometry: {error}") from None
            if geometry.geom_type not in ("Polygon", "MultiPolygon"):
                raise ValueError(f"features[{n}].geometry is a {geometry.geom_type}, expected Polygon or MultiPolygon")
            if not geometry.is_valid:
                raise ValueError(f"features[{n}].geometry is invalid: {shapely.is_valid_reason(geometry)}")
            lon_min, lat_min, lon_max, lat_max = geometry.bounds
            if not (-180 <= lon_min <= lon_max <= 180 and -90 <= lat_min <= lat_max <= 90):
                raise ValueError(f"features[{n}] lies outside lon/lat range (GeoJSON order is [lon, lat])")
            properties = feature.get("properties") or {}
            ids.append(str(feature.get("id") or properties.get("id") or properties.get("name") or f"zone-{n}"))
            geometries.append(geometry)
        if len(set(ids)) != len(ids):
            raise ValueError("feature ids are not unique")
        return cls(tuple(ids), tuple(geometries))

    def zones_at(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Zone id per position (object array, None outside every zone); NaN positions are outside."""
        lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
        result = np.full(lat.shape, None, dtype=object)
        if not self.ids or lat.size == 0:
            return result
        points = shapely.points(lon.ravel(), lat.ravel())
        point_index, zone_index = self._tree.query(points, predicate="intersects")
        flat = result.ravel()
        # A point in two overlapping zones takes the first one listed: assign later zones first.
        order = np.argsort(-zone_index, kind="stable")
        flat[point_index[order]] = np.array(self.ids, dtype=object)[zone_index[order]]
        return flat.reshape(lat.shape)

    def zone_at(self, lat: float, lon: float) -> str | None:
        """Zone id at one position, or None."""
        return self.zones_at(np.array([lat]), np.array([lon]))[0]

    def contains(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Boolean mask: which positions lie inside any of the polygons."""
        return self.zones_at(lat, lon) != None  # noqa: E711  (elementwise on an object array)


def load_zones(path: Path) -> Zones:
    """Read a GeoJSON file; ValueError names what is wrong (not JSON, wrong type, bad geometry)."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None
    return Zones.from_geojson(document)


def coarsen(lat: np.ndarray, lon: np.ndarray, precision_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Snap positions to a grid of about precision_m (longitude step widened by latitude)."""
    step = precision_m / METRES_PER_DEG
    lat_c = np.round(np.asarray(lat) / step) * step
    lon_step = step / np.maximum(np.cos(np.radians(lat_c)), 1e-6)
    return lat_c, np.round(np.asarray(lon) / lon_step) * lon_step
