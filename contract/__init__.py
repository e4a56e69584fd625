"""The contract every layer shares: the settings object, topic names, record types and the
clue model.

It sits at the bottom of the package graph (see ``.importlinter``): it imports nothing
else of the project, so detectors, geography, storage, ingesters, streams and the API can
all depend on it without depending on each other.
"""
