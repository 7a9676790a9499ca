"""The HTML report: one self-contained page (``report``), its sections (``sections``, ``efficiency_sections``,
``scaling_section``), its plotly charts (``charts``) and its own stylesheet and scripts (``page_assets``)."""
