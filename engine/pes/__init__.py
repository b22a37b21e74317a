"""Li-transport descriptors from potential-energy grids with Li probes as the batch dimension: the interstitial grid
in the frozen structure (Ξ, arXiv:2411.06804) and the framework grid of one Li in the Li-free host (percolation
barrier), the batched probe evaluation, and the refinement of the barrier on a finer local grid.
"""
