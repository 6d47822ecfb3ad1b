"""Tests of the saga lesson on the real runtime."""
