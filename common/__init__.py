"""Helpers every package uses (the clock, domain errors, the principal, JSON responses), so
that no package imports another only for a helper."""
