"""The ui package: the Streamlit pieces every page shares (the run store, the hyperparameter form, Train, the
live monitor, pickers). Pages stay thin: they explain, pick a data set, call `train_panel` and `run_monitor`, and
draw their own extras. Pages import only this package, core.questions and core.sources (plus core.data and
core.viz for what they draw); the run engine is reached only through here.

Its rooms (pages call everything through this package: `ui.train_panel(...)`, `ui.text(...)`):
    identity     who is using the lab (me(), names, the cookies)       instructor   the instructor key
    server       the background pump, in-server threads and work      store        the run store, who may do what
    words        plurals, a learner's text made safe, plain errors     links        a page's settings in its URL
    forms        the form and Train, the run shown, data-set pickers    monitor      reading a run, the live monitor
    views        grids, scrubbing, downloads, the next-token panel     models       the model picker
    sidebar      the sidebar every page shares                         starts       start from a trained model, keep training
"""
from core.engine import InvalidSpec, RunSpec  # noqa: F401  (pages reach the engine's types through here)

from .forms import (KEPT, current_run, dataset_radio, keep, kept, pick_dataset, quick_time,  # noqa: F401
                    train_panel, with_choices)
from .identity import Me, auth_configured, display_name, me, save_identity, set_name, sign_out  # noqa: F401
from .instructor import become_instructor  # noqa: F401
from .links import link_param, page_address, share_for, shared_runs  # noqa: F401
from .models import model_picker  # noqa: F401
from .monitor import (BODY_EVERY, LIVE_POINTS, STATE_ICON, STATUS_EVERY, RunView, curve, queue_text,  # noqa: F401
                      read_run, run_monitor, run_samples)
from .server import heavy_step, server_threads, server_work, start_pump  # noqa: F401
from .sidebar import sidebar  # noqa: F401
from .starts import FINETUNE, keep_training, start_picker  # noqa: F401
from .store import (board_on, can_change, device, in_app, load_data, may_view, my_runs, set_board,  # noqa: F401
                    store, submit, viewer)
from .views import (NOTEBOOK_SNIPPET, SCRUB_PLAY_SECONDS, final_grid, next_token_panel, pairs_grid,  # noqa: F401
                    result_metrics, scrub, shipped_notes, take_home)
from .words import MD_SPECIAL, plain, plural, text  # noqa: F401
