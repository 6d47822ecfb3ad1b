"""Event sourcing services: an account aggregate writing to a log, projections reading it."""
