"""The backup API's bearer token: its file and its check."""

import stat

import pytest

from dcos_backup.errors import Unauthorized
from dcos_backup.service.auth import check_bearer, generate_token_file, read_token_file


def test_token_file_is_private(tmp_path):
    path = tmp_path / "secrets" / "token"
    token = generate_token_file(path)
    assert len(token) >= 40 and path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_token_file(path) == token


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong", "Basic t0ken", "t0ken"])
def test_only_the_bearer_token_passes(header):
    with pytest.raises(Unauthorized):
        check_bearer(header, "t0ken")
    check_bearer("Bearer t0ken", "t0ken")
    check_bearer("bearer  t0ken ", "t0ken")
