"""The run file and what is read from it: the HDF5 store (columns from row types), merging shards, comparing two runs,
and the report (funnel table, coating tables, plots).
"""
