"""The services of the event sourcing lesson, one package each."""
