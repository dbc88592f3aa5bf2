"""Fusion methods: the interface every method implements, and the registry."""
