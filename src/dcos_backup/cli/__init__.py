"""Console scripts. One thin module per script; each only parses arguments and calls the library."""

import sys

# httpx imports its own command line (click, rich, pygments) when it is imported: a tenth of a second of
# every console script's start (measured), never used here. A None module makes that import fail the way
# httpx expects when those packages are missing (it then defines a stub). This runs before any script
# module, so before httpx is imported.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
