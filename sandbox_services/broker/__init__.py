"""Shared AMQP plumbing for the messaging lessons: naming, reconnects, confirms, trace headers.

Lesson services import from here so their own modules show the pattern, not the plumbing.
"""
