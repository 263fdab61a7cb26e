"""Flask extensions, created unbound and wired in ``create_app`` with ``init_app``."""
from flask import current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from masking.db import Base
from masking.settings import MaskingSettings

# expire_on_commit=False: a masking just committed is returned to the client without reloading it.
db = SQLAlchemy(metadata=Base.metadata, session_options={"expire_on_commit": False})
migrate = Migrate(render_as_batch=True)  # batch mode lets migrations alter SQLite tables


def now():
    """The current instant (naive UTC) by the app's clock; tests install a controllable one."""
    return current_app.extensions["masking_clock"]()


def settings() -> MaskingSettings:
    """The masking rules' settings of the current app."""
    return current_app.extensions["masking_settings"]
