"""Batched FIRE relaxation of cell and positions with a uMLIP: the stage, and the in-flight FIRE loop that swaps
converged systems out and new ones in.
"""
