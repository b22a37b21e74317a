"""Reference phases for the hulls: their sources (built-in, a file, the Materials Project), prototype completion of
each chemical system, their relaxation with the run's model and the cache that keeps it between runs.
"""
