"""The README stays true: every error code and every setting the app reads is documented."""
import re
from pathlib import Path

import pytest

from app import ENV_SETTINGS
from masking.errors import CODES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_error_code_is_in_the_readme_table(code):
    entry = CODES[code]
    row = re.search(rf"^\| {code} \| (?P<message>[^|]+) \| (?P<http>\d+) \|", README, re.MULTILINE)
    assert row, f"{code} is missing from the README's error-code table"
    assert row["message"].strip() == entry.message
    assert int(row["http"]) == entry.http_status


@pytest.mark.parametrize("setting", ENV_SETTINGS)
def test_every_setting_is_in_the_readme(setting):
    assert f"`{setting}`" in README, f"{setting} is read from the environment but not documented"


def test_the_two_commands_are_there():
    assert "make run" in README and "make test" in README
