"""Is the relaxed crystal chemically plausible and dynamically stable: coordination, bond-valence sums and tie lines
(flags by default), and batched finite-displacement phonons.
"""
