"""Reading incident files: presets and column mappings, CSV record boundaries, column-wise parsing and validation (no SQL)."""
