"""Filters on the candidates themselves, before and after relaxation: the band-gap committee (and its MEGNet fix),
uniqueness and novelty against known structures (before relaxation, and within formula after it).
"""
