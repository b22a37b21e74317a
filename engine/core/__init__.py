"""What every stage family shares: typed rows and their statuses, structures as ragged arrays (``Crystals``) and as
batched torch-sim states, supercells, and batches cut to an atom budget.
"""
