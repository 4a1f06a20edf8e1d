"""System benchmarks: the app, its server and its runs under load (real server, AppTest sessions, Chromium)."""
