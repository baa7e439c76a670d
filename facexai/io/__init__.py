"""Files at the edges: one atomic writer under tidy CSV, JSON, tensors and figures; one progress bar."""
