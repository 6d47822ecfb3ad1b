"""The services of the async messaging lesson, one package each."""
