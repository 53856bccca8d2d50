"""The cell's options against the environment: a variable that names the same thing wins (review item 25)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from colab_bootstrap.errors import BootstrapError
from colab_bootstrap.settings import Settings


def _settings(tmp_path: Path, options: dict, **env: str) -> Settings:
    return Settings.from_options(options, {"HOME": str(tmp_path), "COLABSSH_PROFILE_D": "", **env})


@pytest.mark.parametrize(("option", "variable", "every"), [
    (600, None, 600),  # the cell's option alone
    (0, "30", 30),  # the variable turns it on
    (600, "0", 0),  # ... and off: it wins, as COLABSSH_TUNNEL does over the tunnel option
    (600, "45", 45),
    (600, "", 600),  # an empty variable is as good as none
    (None, None, 0),
])
def test_colabssh_sync_every_overrides_the_cells_option(tmp_path, option, variable, every):
    env = {} if variable is None else {"COLABSSH_SYNC_EVERY": variable}
    assert _settings(tmp_path, {"sync_every": option}, **env).sync_every == every


def test_colabssh_tunnel_overrides_the_cells_option_the_same_way(tmp_path):
    assert _settings(tmp_path, {"tunnel": "ngrok"}, COLABSSH_TUNNEL="local").tunnel == "local"
    assert _settings(tmp_path, {"tunnel": "cloudflared"}).tunnel == "cloudflared"


@pytest.mark.parametrize(("option", "env", "names"), [
    (0, {"COLABSSH_SYNC_EVERY": "１０"}, "COLABSSH_SYNC_EVERY='１０'"),  # full-width digits: str.isdigit() says yes
    (0, {"COLABSSH_SYNC_EVERY": "-5"}, "COLABSSH_SYNC_EVERY='-5'"),
    (-1, {}, "the cell's sync_every='-1'"),
    ("1.5", {}, "the cell's sync_every='1.5'"),
])
def test_a_bad_sync_every_names_where_it_came_from(tmp_path, option, env, names):
    with pytest.raises(BootstrapError) as caught:
        _settings(tmp_path, {"sync_every": option}, **env)
    assert caught.value.message == f"{names} is not a whole number of seconds"
    assert "600" in caught.value.hint


@pytest.mark.parametrize(("options", "env", "restore", "fresh"), [
    ({}, {}, True, False),  # the defaults: restore an empty content root, keep the host key on Drive
    ({"restore": False, "fresh_host_key": True}, {}, False, True),  # the cell's options
    ({"restore": False}, {"COLABSSH_RESTORE": "1"}, True, False),  # the variable wins
    ({}, {"COLABSSH_RESTORE": "0", "COLABSSH_FRESH_HOST_KEY": "1"}, False, True),
    ({"fresh_host_key": True}, {"COLABSSH_FRESH_HOST_KEY": "no"}, True, False),
    ({"restore": False}, {"COLABSSH_RESTORE": ""}, False, False),  # empty: as good as none
])
def test_restore_and_fresh_host_key_come_from_the_options_and_the_environment(tmp_path, options, env, restore, fresh):
    settings = _settings(tmp_path, options, **env)
    assert (settings.restore, settings.fresh_host_key) == (restore, fresh)


def test_a_switch_that_is_neither_one_nor_zero_is_refused_with_a_hint(tmp_path):
    with pytest.raises(BootstrapError) as caught:
        _settings(tmp_path, {}, COLABSSH_RESTORE="maybe")
    assert "COLABSSH_RESTORE='maybe' is neither 1 nor 0" in caught.value.message
    assert "COLABSSH_RESTORE=0" in caught.value.hint


def test_the_home_is_colabssh_home_else_the_login_users_home(tmp_path):
    import pwd

    assert _settings(tmp_path, {}, COLABSSH_HOME=str(tmp_path / "h")).home == tmp_path / "h"
    assert _settings(tmp_path, {}).home == Path(pwd.getpwuid(os.geteuid()).pw_dir)  # not $HOME
