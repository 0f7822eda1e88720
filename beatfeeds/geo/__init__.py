"""Geometry: point-in-beat assignment, beat-map files, validation and edits (geopandas/shapely, no SQL)."""
