"""The list of questions the home page shows (titles, one line each, reference numbers)."""
from pathlib import Path

_HERE = Path(__file__).parent
QUESTIONS = [
    {"key": "q1", "title": "Q1 · 1-D data", "file": "q1_1d.py", "reference": "2.562 / 2.555",
     "what": "fit a histogram and a discretized mixture of logistics to one discrete variable"},
    {"key": "q2", "title": "Q2 · PixelCNN", "file": "q2_pixelcnn.py", "reference": "0.0420 / 0.0444",
     "what": "masked convolutions on binary and colour images; see the mask and the blind spot"},
    {"key": "q3", "title": "Q3 · iGPT + KV cache", "file": "q3_transformer.py", "reference": "0.0397 / 0.0541",
     "what": "a transformer on pixels; race sampling with and without a key/value cache"},
    {"key": "q4", "title": "Q4 · VQ tokens", "file": "q4_vq.py", "reference": "3.083",
     "what": "tokenize images with a VQ-VAE, tweak its codebook, model the tokens"},
    {"key": "q5", "title": "Q5 · Poetry", "file": "q5_poetry.py", "reference": "1.60–2.13 (students)",
     "what": "a character-level transformer that writes verse"},
    {"key": "q6", "title": "Q6 · Text + image", "file": "q6_multimodal.py", "reference": "2.45–3.07 (students)",
     "what": "one transformer over caption words and image tokens"},
]
for q in QUESTIONS:
    q["page_exists"] = (_HERE / q["file"]).exists()
