"""The account service: the aggregate, the single writer of the event log."""
