"""The command line and the sweep: grids, profiles, the result cache, rendering and benchmarks."""
