"""The services of the rest vs grpc lesson, one package each."""
