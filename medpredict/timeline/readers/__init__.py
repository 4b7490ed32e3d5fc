"""Readers from clinical sources into the event model, each screening what it reads."""
