"""From clues to enforcement decisions: risk per regulated entity, random inspection draws,
joint inspections and enforcement coverage (issue 17).

Pure like ``detectors``: histories, rosters and seeds in, scores, draws and figures out; no
database, no Kafka, no clock reads (the moment of a computation is passed in). ``storage``
reads and writes what these modules decide.
"""
