"""The cutover report: its data from the journal (data), Markdown (markdown) and one HTML page (html)."""
