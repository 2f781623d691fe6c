"""Tables of the documentation that are the code itself: nothing is measured, so they carry no machine or date,
and tests keep them equal to the code.

- README.md ``config-table``: every config key with its default and meaning (igcore's config schema; the same
  as ``python -m igcore config --markdown``);
- docs/ARCHITECTURE.md ``stages-table``: the stages with what each requires and provides
  (``python -m igcore stages --markdown``), and ``generators-table``: the registry of the documentation's
  generators (``python -m bench.regenerate --list``);
- docs/SCALE.md ``ray-keys``: the keys of the ray executor, from the same schema;
- docs/microscope.md ``attribution-methods``: the registered attribution methods, their architectures and
  their parameters' defaults.

    python -m bench.code_tables
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench.common import Report
from bench.regenerate import registry_markdown
from igcore.config import config_markdown, default_config
from igcore.config.render import describe_config
from igcore.microscope import ATTRIBUTIONS
from igcore.stages import stages_markdown


def ray_keys() -> str:
    """The executor's keys (``executor``, ``ray.*``) as README's table shows them."""
    table = config_markdown().split("\n\n")[0].splitlines()
    keys = {key for key, *_ in describe_config(default_config()) if key == "executor" or key.startswith("ray.")}
    return "\n".join([*table[:2], *(row for row in table[2:] if row.split("`")[1] in keys)])


def attribution_methods() -> str:
    """The attribution registry: each method's architectures, parameters (defaults) and what it computes."""
    lines = ["| method | architectures | parameters (defaults) | what |", "|---|---|---|---|"]
    for name, method in ATTRIBUTIONS.items():
        params = ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in method.defaults.items()) or "–"
        lines.append(f"| `{name}` | {', '.join(method.architectures)} | `{params}` | {method.description} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    report = Report("code-tables", sys.argv[1:] if argv is None else argv)
    report.block("README.md", "config-table", config_markdown())
    report.block("docs/ARCHITECTURE.md", "stages-table", stages_markdown(default_config()))
    report.block("docs/ARCHITECTURE.md", "generators-table", registry_markdown())
    report.block("docs/SCALE.md", "ray-keys", ray_keys())
    report.block("docs/microscope.md", "attribution-methods", attribution_methods())
    report.publish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
