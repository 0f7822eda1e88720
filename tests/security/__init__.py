"""Hostile input and anonymous load (issue 14): each module reproduces one way in."""
