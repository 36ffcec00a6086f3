"""Infinite-width kernels: closed-form duals, quadrature, layer recursions, tiling."""
