"""The committee stage: the thermo verdict of the finalists re-judged by other universal potentials."""
