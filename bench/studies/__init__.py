"""One-off studies: the measurements behind a preset or a number the app shows."""
