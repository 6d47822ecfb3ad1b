"""The API-gateway lesson's services: the edge, the issuer, three back ends and the BFF."""
