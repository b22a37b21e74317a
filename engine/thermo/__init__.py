"""Thermodynamics on uMLIP energies with pymatgen: E_hull with MP2020 corrections, Li stability windows, mixing
energies with LGPS and LiCoO2, and the anode- and cathode-coating criteria.
"""
