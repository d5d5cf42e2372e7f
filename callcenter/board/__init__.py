"""The supervisors' live wallboard and listening in (issue 15): see docs/board.md."""
