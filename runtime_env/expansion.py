"""`${VAR}` references: the one pattern, and its two expansions.

`env_vars` values become what the workers see, so a missing variable is "" there, as in a
shell. Requirement lines and conda specs are handed to an installer, so a missing variable is
left as written there and the installer's error names it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime_env.setup import Setup

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${VAR}


def expand_or_empty(text: str, env: Mapping[str, str]) -> str:
    """Replace each `${VAR}` by its value in `env`; a missing variable becomes ""."""
    return REFERENCE.sub(lambda m: env.get(m.group(1), ""), text)


def expand_known(text: str, env: Mapping[str, str]) -> str:
    """Replace each `${VAR}` by its value in `env`; a missing variable is left as written."""
    return REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def expansion_env(setup: Setup) -> dict[str, str]:
    """What `${VAR}` may name at setup: the node's environment and what earlier fields exported
    (the working_dir plugin exports its folder under both MINRAY_ and Ray's RAY_ spelling)."""
    return {**os.environ, **setup.exports}
