"""The ingest room: an incident file -> validated rows and rejections (imports only `core`).

`presets` and `mapping` say which columns are which fields; `reading` sniffs the encoding
and delimiter and reads the header and the records in chunks (`csvblocks` finds record
boundaries); `fields` holds the parsers and the row fingerprint both paths share; `rows` is
the per-row validator and `columnar` the column-wise fast path; `forked` parses in a child
process; `report` writes the rejected-rows CSV. Storing a run is `services.imports`.
"""
