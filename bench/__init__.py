"""Benchmarks and studies of the lab; results, and the command that produced each, in bench/RESULTS.md.

Run each from the repository root as a module, e.g. `python -m bench.kernels.pixelcnn --help`:
    bench.kernels   the models' own speed: PixelCNN, KV cache, attention layouts, VQ-VAE, Q4 training steps
    bench.system    the app and its runs under load: app overhead, a class of learners, long runs, interactions,
                    the Q3c race as the page runs it, the whole homework's time
    bench.studies   one-off studies that chose a preset or a number: Q1 tuning, Q6 agreement, shapes' centring
    bench.server    not a benchmark: the real app served on a free port (App), for bench.system, tests and docs
Every script has main(argv=None).
"""
