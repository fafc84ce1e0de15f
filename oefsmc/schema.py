"""The results-schema version: one constant for the pipeline's configs and the cache's records.

Bump when the record layout or the meaning of a resolved config changes; old records are then reported
as schema-mismatched and recomputed.  History: 1 -- first layout; 2 -- common random numbers (compression
stream seeded by method, OE-in-compression and seed), one intra-op thread per cell, device and evaluation
precision resolved, fine-tuning protocol switches (bn, params, rel_tol, select).
"""
RESULTS_SCHEMA_VERSION = 2
