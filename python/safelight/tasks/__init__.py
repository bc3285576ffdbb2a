"""Tasks: Programs built from the op library for end-user jobs."""
