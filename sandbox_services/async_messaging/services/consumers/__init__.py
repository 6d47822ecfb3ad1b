"""The email, audit and analytics services: one code base, one queue and one store each."""
