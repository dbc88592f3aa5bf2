"""Grids and tiles: the geometry shared by every stage."""
