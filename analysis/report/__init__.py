"""The report: one self-contained HTML page per experiment, written atomically.

- plotly.js is embedded once, in the head; each figure is a JSON spec drawn by Plotly.newPlot,
  so nothing is fetched from the network (no CDN, no fonts, no MathJax).
- Everything from the experiment is escaped: html.escape in the page, and inside <script> the
  JSON has `<`, `>` and `&` written as \\u003c, \\u003e, \\u0026, so no value can close the
  script element.
- The same experiment directory gives the same bytes: no clock, no random ids (figure divs are
  named after their section), sorted iteration everywhere.

One module per section (header, confirm, pareto, diagnoses, trials_table, provenance), the
building blocks in html.py with the CSS and JavaScript beside it, the page in page.py.
"""

from analysis.report.page import Running, against_sweep, build_report, write_report

__all__ = ["Running", "against_sweep", "build_report", "write_report"]
