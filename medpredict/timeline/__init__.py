"""Patient timelines: events in the MEDS layout, readers, cohorts, features, sequence models.

The flow is ``source files -> reader -> events (MEDS) -> cohort (index times, outcome,
exclusions) -> features (only events at or before each index time) -> study``; see
``docs/timelines.md``.
"""
