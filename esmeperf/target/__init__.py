"""Embedded ESME-compatible target: organizer, participant and messenger APIs in one process."""
