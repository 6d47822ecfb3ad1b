"""Tests of the rest vs grpc lesson on the real runtime."""
