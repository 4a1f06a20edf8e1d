#!/usr/bin/env bash
# Set-up and entry points for Autoregressive Lab on a fresh machine.
#   bash lab.sh app    create .venv, install, fetch the data it can, start the app on http://localhost:8501
#   bash lab.sh test   create .venv, install (+ test tools from requirements-dev.txt, among them the OpenID Connect
#                      provider the sign-in test signs in with; Chromium if it can), fetch data, run the tests
# ARLAB_DEV=1 bash lab.sh app: reload pages when their source is saved (a polling watcher on the app's own files;
# the served default watches nothing, see .streamlit/config.toml)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

install() {  # $1 = requirements file; reinstalls only when it (or requirements.txt, which it may include) changed
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  local stamp=".venv/.installed-$(basename "$1")" want
  want="$(cat requirements.txt "$1" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -r "$1"
    echo "$want" > "$stamp"
  fi
}

fetch() {  # every data set it can get; a failure is reported, and the app still runs on what it has
  .venv/bin/python -m core.data fetch || echo "lab.sh: some data sets could not be fetched (see above); the rest work."
}

case "${1:-app}" in
  app)
    install requirements.txt
    if [ "${ARLAB_LAUNCHER:-local}" = ray ]; then   # runs placed on a Ray cluster (README: Beyond one machine)
      install requirements-ray.txt
      .venv/bin/python -m core.engine.ray_launcher
    fi
    fetch
    # the first Q4b and Q6 runs start in seconds when the coloured MNIST sets are already tokenized: do it now, in
    # the background at the lowest priority (a run that starts first tokenizes what it needs itself);
    # ARLAB_WARM_TOKENS=0 skips it (the test servers, which run no Q4b/Q6 training)
    if [ "${ARLAB_WARM_TOKENS:-1}" != 0 ]; then
      log="${ARLAB_DATA_DIR:-data_cache}/warm-tokens.log"
      mkdir -p "$(dirname "$log")"
      (nice -n 19 .venv/bin/python -u -m core warm-tokens >"$log" 2>&1 &)
    fi
    dev=()
    [ "${ARLAB_DEV:-0}" = 1 ] && dev=(--server.fileWatcherType poll --server.runOnSave true --client.showErrorDetails full)
    case "${ARLAB_ADDRESS:-127.0.0.1}" in
      127.0.0.1|localhost|::1) ;;
      *) grep -qs '^\[auth\]' .streamlit/secrets.toml || echo "lab.sh: serving on ${ARLAB_ADDRESS} without sign-in:" \
           "learners are told apart by a browser cookie, not a login (README: Serving a classroom)." >&2 ;;
    esac
    shift || true   # what follows `app` goes to Streamlit as it is (e.g. --secrets.files PATH)
    exec .venv/bin/python -m streamlit run app.py --server.address "${ARLAB_ADDRESS:-127.0.0.1}" \
      --server.port "${ARLAB_PORT:-8501}" "${dev[@]}" "$@"
    ;;
  test)
    install requirements-dev.txt
    if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "lab.sh: could not install Chromium; the browser test will be skipped"
    fi
    fetch
    shift || true
    # three test processes, a file to each at a time, one torch thread each: much of the suite waits (servers, Ray,
    # Chromium, worker processes starting), so a third process fills the 2 cores better than two (257 s vs 273 s on
    # the 2-core box; at two threads each, processes oversubscribe the cores and run slower than one process);
    # ARLAB_TEST_PROCESSES=0 runs everything in this process
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
    n="${ARLAB_TEST_PROCESSES:-3}"
    [ "$n" = 0 ] && exec .venv/bin/python -m pytest "$@"
    exec .venv/bin/python -m pytest -n "$n" --dist loadfile --no-loadscope-reorder "$@"
    ;;
  *) echo "usage: bash lab.sh [app|test]" >&2; exit 2 ;;
esac
