"""What every command module shares: the sub-command table's type and the local users file."""

from __future__ import annotations

import argparse
from typing import TypeAlias

from auth.local import LocalUserStore
from base.errors import ConfigError
from gateway.config import Config

CommandGroups: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def local_user_store(config: Config) -> LocalUserStore:
    if config.auth.local is None:
        raise ConfigError(config.path, None, "auth.local", "local users are switched off in this configuration")
    return LocalUserStore(config.auth.local.users_file)
