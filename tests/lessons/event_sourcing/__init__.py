"""Tests of the event sourcing lesson on the real runtime."""
