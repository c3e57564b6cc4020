"""What the command lines print: audiolm_pt's own INFO lines and every library's warnings,
not the INFO chatter of absl, Orbax, JAX, clu and TensorFlow, unless `--verbosity` asks
for it (absl's flag: `--verbosity=0` restores INFO everywhere, 1 adds DEBUG).

TensorFlow (which clu and TFDS import) writes INFO lines from C++ straight to file
descriptor 2 when it is first imported, and no environment variable silences them in the
version pinned here. So importing this module imports TensorFlow with descriptor 2 captured
and passes on every line that is not such an INFO line. Entry points import it before
anything that reaches TensorFlow; Grain's spawned workers re-import the entry point first,
so they are quiet too.
"""

import importlib
import importlib.util
import logging
import os
import re
import sys
import tempfile

from absl import flags
from absl import logging as absl_logging
from absl.logging import converter

# C++ INFO lines ("I1130 19:41:08.33 ..." or "I0000 00:00:..."), absl's notice that precedes
# the first of them, and the continuation line of TensorFlow's CPU-feature notice.
_CHATTER = re.compile(
    r"^(I\d{4} |WARNING: All log messages before absl::InitializeLog|To enable the following)"
)


def _asks_for_verbosity() -> bool:
    return any(arg.startswith(("--verbosity", "-v=")) for arg in sys.argv)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow (when installed and not yet imported) without its INFO lines."""
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            importlib.import_module("tensorflow")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        lines = captured.read().decode(errors="replace").splitlines()
    for line in lines:
        if not _CHATTER.match(line):
            print(line, file=sys.stderr)


def configure(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Python logging for a command line, once absl has parsed the flags."""
    if "verbosity" in flag_values and flag_values["verbosity"].present:
        level = converter.absl_to_standard(flag_values.verbosity)
        logging.getLogger().setLevel(level)
        logging.getLogger("audiolm_pt").setLevel(level)
        return
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("audiolm_pt").setLevel(logging.INFO)


if not _asks_for_verbosity():
    import_tensorflow_quietly()
