"""The projector: builds read models (views) by consuming the event log from an offset."""
