"""Tests of the async messaging lesson on the real runtime."""
