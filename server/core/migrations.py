"""Run Alembic from code: the CLI, the embedded start-up and the tests use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine


def _project_root() -> Path:
    """The folder holding alembic.ini and migrations/: the source checkout, or else the
    working directory (the container image keeps them in /app)."""
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "alembic.ini").is_file() else Path.cwd()


def alembic_config(engine: Engine | None = None) -> Config:
    root = _project_root()
    if not (root / "alembic.ini").is_file():
        raise FileNotFoundError(
            f"alembic.ini not found in {root}: run from the EdgePlane source or image folder"
        )
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
