"""Paper tables and figures for the OE-FSMC reproduction.

* :mod:`paper_tables.reported` -- the paper's printed numbers (Table 1, Table 2)
  and the stated findings of Figure 3, as DataFrames.
* :mod:`paper_tables.render` -- side-by-side rendering of reported vs.
  reproduced results (Markdown / LaTeX / CSV) and Figure 3 panels (PNG / PDF);
  the public face of :mod:`~paper_tables.columns` (what ran for a column, its
  header), :mod:`~paper_tables.cells` (one cell's statistics and texts),
  :mod:`~paper_tables.tables` (Tables 1-2 as cells frames) and
  :mod:`~paper_tables.formats` (layout and writing).
* :mod:`paper_tables.claims` -- the paper's two claims checked seed by seed
  (paired differences, 95% t intervals, sign counts, verdicts).
* :mod:`paper_tables.perclass` -- per-class accuracy, head -> tail, of each
  Table 2 column (PNG / PDF).
* :mod:`paper_tables.protocols` -- claim 2 under each fine-tuning protocol, and
  the test-set-selection diagnostic.

Every label and order (methods, OE variants, datasets, architectures) comes from
:mod:`oefsmc.axes`; nothing here imports torch.
"""
