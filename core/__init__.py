"""Autoregressive Lab's model package: data, models, the training loop, the run engine. No Streamlit here."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository root
