"""The text formats: the terminal summary of a run (``table``), the report as terminal tables
(``terminal``) and as markdown (``markdown``), and the per-case summary they share (``summary``)."""
