"""Multi-replica NVT molecular dynamics: the protocol (temperatures, replicas, windows), batched replicas, trajectory
frames in the run file, and the analysis (windowed MSD, Nernst–Einstein conductivity, Arrhenius extrapolation to
300 K, framework stability).
"""
