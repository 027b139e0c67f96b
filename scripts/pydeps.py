"""Print the dependencies declared in pyproject.toml (runtime, plus the named extras).

`make` installs these into .venv without installing Strongroom itself, which runs from the checkout.
"""

import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
deps = list(project["dependencies"])
for extra in sys.argv[1:]:
    deps += project["optional-dependencies"][extra]
print("\n".join(deps))
