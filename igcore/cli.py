"""``python -m igcore run|baseline|world|microscope|list|clean|config|stages``.

Bad input (config, paths, ids) ends with exit code 2 and one line ``error: ...``; the last line of
``run`` and ``baseline`` is the run directory so scripts can capture it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from igcore.errors import EXIT_STATUS, InputError

if TYPE_CHECKING:
    from igcore.config import Config

#: The CLI's exit status when Ctrl+C interrupted it (128 + SIGINT, the shell's convention).
INTERRUPTED = 130
#: The CLI's exit status when whatever read its output stopped reading (``igcore list | head``; 128 + SIGPIPE).
OUTPUT_CLOSED = 141


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage otherwise)
        command = " ".join(["python -m igcore", *self.prog.split()[1:]])  # prog is "igcore" or "igcore <command>"
        print(f"error: {message} (see `{command} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_STATUS)


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML or JSON file of config keys (see README 'Config keys')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")


def _stage_printer(name: str, i: int, total: int) -> None:
    if name != "done":
        print(f"[{i + 1}/{total}] {name}", file=sys.stderr, flush=True)


def cmd_world(args: argparse.Namespace) -> int:
    from igcore.config import load_config
    from igcore.worlds import SPLITS, build_world

    config = load_config(args.config, args.set)
    world = build_world(config.world, config.seed)
    if args.preview:
        from igcore.worlds.preview import contact_sheet

        out = Path(args.preview)
        if not out.parent.exists():
            raise InputError(f"directory {str(out.parent)!r} does not exist; create it or choose another --preview path")
        contact_sheet(world, out)
        print(out)
        return 0
    import numpy as np

    names = world.group_names()
    for split in SPLITS:
        s = world.split(split)
        counts = np.bincount(s.groups[s.groups >= 0], minlength=len(names))
        print(f"{split:13s} n={len(s):6d}  " + "  ".join(f"{n}={c}" for n, c in zip(names, counts, strict=True)))
    return 0


def _run(args: argparse.Namespace, stages: Callable[[Config], list[str] | None]) -> int:
    """Run the pipeline on ``args``' settings with ``stages(config)`` (None: the default selection)."""
    from igcore.config import load_config
    from igcore.pipeline import run_pipeline
    from igcore.store import load_run_dir

    config = load_config(args.config, args.set)
    run_dir = run_pipeline(config, args.out, on_stage=_stage_printer, stages=stages(config), progress=not args.quiet)
    run = load_run_dir(run_dir)
    for method, m in run.results().methods.items():
        print(f"{method:14s} avg={m.avg_acc:.3f}  worst-group={m.worst_group_acc:.3f}", file=sys.stderr)
    for note in run.info().notes:
        print(f"note ({note.stage}): {note.note}", file=sys.stderr)
    print(run_dir)
    return 0


def _stage_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("--stages expects a comma-separated list of stage names (see `python -m igcore stages`)")
    return names


def cmd_run(args: argparse.Namespace) -> int:
    names = _stage_list(args.stages)
    return _run(args, lambda config: names)


def cmd_baseline(args: argparse.Namespace) -> int:
    from igcore.stages import with_prerequisites

    return _run(args, lambda config: with_prerequisites(config, ["erm"]))


def cmd_list(args: argparse.Namespace) -> int:
    from igcore.store import RunStore

    store = RunStore(args.out)
    runs, leftovers = store.list(), store.leftovers()
    for leftover in leftovers:  # not runs: being written, interrupted (writer died) or failed
        print(f"{leftover.path.relative_to(store.root)}  {leftover.state:10s}  (not a run; `python -m igcore clean` removes interrupted and failed ones)")
    if not runs:
        print(f"no runs in {args.out!r}")
        return 0
    for run in runs:
        status, erm, ig = run.status, None, None
        if status != "unreadable":
            try:
                methods = run.results().methods
                erm = methods["erm"].worst_group_acc if "erm" in methods else None
                ig = methods["ig_student"].worst_group_acc if "ig_student" in methods else None
            except (InputError, ValueError):
                status = "unreadable"
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{run.run_id}  {status:10s}  erm_wga={fmt(erm)}  ig_student_wga={fmt(ig)}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from igcore.store import RunStore

    store = RunStore(args.out)
    removed = store.clean()
    for leftover in removed:
        print(f"removed {leftover.path.relative_to(store.root)} ({leftover.state})")
    print(f"{len(removed)} leftover folder(s) removed from {args.out!r}; runs and runs being written are untouched")
    return 0


def cmd_microscope(args: argparse.Namespace) -> int:
    from igcore.microscope.recompute import recompute

    out = recompute(args.run_dir, args.set)
    print(out)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from igcore.config import config_markdown, config_text, load_config

    config = load_config(args.config, args.set)
    print(config_markdown(config) if args.markdown else config_text(config))
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    from igcore.config import load_config
    from igcore.stages import STAGES, select_stages, stages_markdown

    config = load_config(args.config, args.set)
    if args.markdown:
        print(stages_markdown(config))
        return 0
    default = {s.name for s in select_stages(config)}
    for stage in STAGES:
        mark = "*" if stage.name in default else " "
        needs = ", ".join(stage.requirements(config)) or "-"
        print(f"{mark} {stage.name:14s} requires {needs:40s} provides {', '.join(stage.provides)}")
        if reads := stage.optional_reads(config):
            print(f"  {'':14s} reads when run: {', '.join(reads)}")
        print(f"  {'':14s} {stage.doc}")
    print(f"(* = run by default with this config; up to {config.runtime.concurrent_stages()} at once (runtime.stages), "
          "each starting once what it requires or reads exists)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="igcore", description="Imitative Generalization engine and baseline microscope")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("world", help="summarise the world's splits or write a contact sheet")
    _config_args(p)
    p.add_argument("--preview", metavar="OUT.png", help="write a contact sheet of every split")
    p.set_defaults(fn=cmd_world)

    for name, fn, text in (
        ("run", cmd_run, "run the whole pipeline into a new run directory"),
        ("baseline", cmd_baseline, "train the ERM baseline and only what it needs (the world; the frozen features when a backbone is set)"),
    ):
        p = sub.add_parser(name, help=text)
        _config_args(p)
        p.add_argument("--out", default="runs", help="runs directory (default: runs)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if name == "run":
            p.add_argument("--stages", metavar="A,B,...", help="run only these stages (requirements are checked first; see `igcore stages`)")
        p.set_defaults(fn=fn)

    p = sub.add_parser("config", help="print the effective config, every key with its meaning")
    _config_args(p)
    p.add_argument("--markdown", action="store_true", help="as README's table of keys")
    p.set_defaults(fn=cmd_config)

    p = sub.add_parser("stages", help="list the pipeline's stages with what each requires and provides")
    _config_args(p)
    p.add_argument("--markdown", action="store_true", help="as the table in docs/ARCHITECTURE.md")
    p.set_defaults(fn=cmd_stages)

    p = sub.add_parser("microscope", help="recompute the baseline microscope of a finished run")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (the last line printed by `run`)")
    p.add_argument("--set", action="append", default=[], metavar="microscope.KEY=VALUE", help="override a microscope key (repeatable)")
    p.set_defaults(fn=cmd_microscope)

    p = sub.add_parser("list", help="list the runs in a runs directory (and leftovers that are not runs)")
    p.add_argument("--out", default="runs", help="runs directory (default: runs)")
    p.set_defaults(fn=cmd_list)

    p = sub.add_parser("clean", help="remove failed and interrupted leftovers (never a run, never one being written)")
    p.add_argument("--out", default="runs", help="runs directory (default: runs)")
    p.set_defaults(fn=cmd_clean)
    for command in sub.choices.values():  # each command's parser reports what it does not recognise
        command.set_defaults(parser=command)
    return parser


#: An error line longer than this keeps its start and its end (a value quoted from a file can be huge).
MAX_ERROR_CHARS = 600


def one_line(message: str) -> str:
    """``message`` as one line of at most about :data:`MAX_ERROR_CHARS` characters, whatever the data held."""
    message = " ".join(message.splitlines())
    if len(message) <= MAX_ERROR_CHARS:
        return message
    half = MAX_ERROR_CHARS // 2
    return f"{message[:half]} … ({len(message) - 2 * half} characters left out) … {message[-half:]}"


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if extra:  # reported by the command's own parser, so the hint names its --help
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code = args.fn(args)
        sys.stdout.flush()  # here, where a reader that stopped reading is handled below, not at the interpreter's exit
        return code
    except InputError as e:
        message = one_line(str(e))
        print(f"error: {message}", file=sys.stderr)
        return EXIT_STATUS
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # the reader has what it wanted; what is left unprinted goes nowhere, without a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes stdout again at exit
        return OUTPUT_CLOSED
