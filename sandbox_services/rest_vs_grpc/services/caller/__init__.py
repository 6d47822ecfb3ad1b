"""The caller: a service that calls the catalog both ways, so traces show caller -> catalog-rest / catalog-grpc."""
