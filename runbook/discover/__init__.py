"""Discovery: reading the old server (scan) into a report and a starting inventory (writeup)."""
