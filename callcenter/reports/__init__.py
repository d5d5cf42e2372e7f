"""The desk's numbers: daily premium, per-specialist performance and the dialer's report
(services.py the queries and rollups, http.py the API, pages and spreadsheets)."""
