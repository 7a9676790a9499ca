"""The shared vocabulary every layer may import: the case spec (``spec``), user-facing errors
(``errors``) and measured readings with their provenance (``readings``). It imports nothing else of
tribench, so importing it never pulls in the engine, a report or a framework."""
