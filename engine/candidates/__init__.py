"""Candidates: the stage that brings structures into a run and checks their validity (d_min, cell sanity), and
its sources: the built-in symmetry-based sampler, WyFormer, and the file readers.
"""
