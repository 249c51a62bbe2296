"""The ``sluice`` command.

Exit codes: 0 the run passed, or warned (printed as WARNED with its causes); 1 the run failed
(a critical check, or a share of quarantined rows above an error threshold of the spec's
policies; for a backfill, any partition failed), or warned under ``--fail-on warned``; 2 a usage,
configuration or input error; 3 an internal error (a bug: please report it).

``--json`` (``run``, ``backfill``, ``validate``) prints one JSON document on standard output
when the command gets that far: the run summary, the backfill summary (an object with
``screened``, ``skipped`` and ``failed`` lists of partition summaries) or the validation result.
Everything else the command prints, and anything a library or child process writes to standard
output, goes to standard error meanwhile, so standard output stays parseable; an error prints
nothing on standard output.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from sluice.core.errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK
from sluice.core.versions import version

EXIT_PIPE = 141
"""The exit code when stdout's reader went away mid-command (128 + SIGPIPE, as a shell gives)."""


def _date(text: str) -> dt.date:
    """A partition value: a day, a month (its first day) or an hour (a ``datetime``)."""
    from sluice.config import BeyondCalendar, Partition

    beyond: str | None = None
    for kind in ("day", "month", "hour"):
        try:
            return Partition.parse(text, kind, "date").start
        except BeyondCalendar as exc:
            # a well-formed value past the calendar's end says so, not that its form is wrong
            beyond = beyond or str(exc)
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(
        beyond
        or f"{text!r} is not a partition of the form YYYY-MM-DD (YYYY-MM for monthly datasets, "
        "YYYY-MM-DDTHH for hourly ones)"
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is one), if any."""
    return next((a for a in argv if a in COMMANDS), None)


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser. The options of serve, report, model and validate live with their
    code and are imported only when ``command`` is that subcommand (or None: all of them), so
    ``sluice --help`` and ``sluice run`` do not import Prefect's server or the report builder."""

    def wants(name: str) -> bool:
        return command is None or command == name

    p = argparse.ArgumentParser(
        prog="sluice",
        description="Screen tabular data partitions: GX suites, PyOD detectors, Prefect flows.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    p.add_argument("--version", action="version", version=f"sluice {version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="screen one partition of a dataset")
    run.add_argument("dataset", help="dataset name (datasets/<name>.yaml) or a spec file")
    run.add_argument(
        "--partition", required=True, type=_date, help="YYYY-MM-DD, YYYY-MM or YYYY-MM-DDTHH"
    )
    run.add_argument("--engine", choices=("auto", "polars", "gx"), default=None)
    run.add_argument(
        "--force", action="store_true", help="screen again even if already done with same inputs"
    )
    run.add_argument(
        "--fail-on",
        choices=("failed", "warned"),
        default="failed",
        help="exit 1 when the run ends this badly (default: failed; warned also fails on warnings)",
    )
    _json_option(run, "the run summary")
    _prefect_option(run)
    run.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="split a bounded partition's ingest into tasks on the Dask cluster whose scheduler "
        "is at ADDRESS (tcp://host:8786); default: SLUICE_DASK_ADDRESS, else the spec's "
        "execution.dask",
    )

    bf = sub.add_parser("backfill", help="screen every partition of a date range")
    bf.add_argument("dataset", help="dataset name (datasets/<name>.yaml) or a spec file")
    bf.add_argument("--start", required=True, type=_date, help="first partition, included")
    bf.add_argument("--end", required=True, type=_date, help="last partition, included")
    bf.add_argument("--engine", choices=("auto", "polars", "gx"), default=None)
    bf.add_argument("--force", action="store_true", help="screen again partitions already done")
    bf.add_argument(
        "--fail-on",
        choices=("failed", "warned"),
        default="failed",
        help="exit 1 when any partition ends this badly (default: failed)",
    )
    _json_option(bf, "the backfill summary: screened, skipped and failed partitions")
    _prefect_option(bf)
    bf.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help="prepare the partitions as tasks on the Dask cluster whose scheduler is at ADDRESS "
        "(tcp://host:8786); default: SLUICE_DASK_ADDRESS, else the spec's execution.dask",
    )

    demo = sub.add_parser("demo", help="generate sample data with planted errors and screen it")
    demo.add_argument("--dir", default="var/demo", help="where data and outputs go")
    demo.add_argument("--days", type=_positive, default=3, help="partitions to generate")
    demo.add_argument("--rows", type=_positive, default=100_000, help="rows per partition")
    demo.add_argument("--seed", type=int, default=2024)
    _prefect_option(demo)

    srv = sub.add_parser("serve", help="start a local Prefect server and worker, and deploy")
    if wants("serve"):
        from sluice.cli.serve import add_arguments as serve_arguments

        serve_arguments(srv)

    rep = sub.add_parser("report", help="rebuild (and open) the report of a past run")
    if wants("report"):
        from sluice.cli.report import add_arguments as report_arguments

        report_arguments(rep)

    mdl = sub.add_parser(
        "model", help="fit a dataset's detector on screened partitions and save it (fit: model)"
    )
    if wants("model"):
        from sluice.cli.model import add_arguments as model_arguments

        model_arguments(mdl, _date)

    bl = sub.add_parser(
        "baseline",
        help="save, list or acknowledge the named baselines a dataset is monitored against",
    )
    if wants("baseline"):
        from sluice.cli.baseline import add_arguments as baseline_arguments

        baseline_arguments(bl, _date)

    val = sub.add_parser("validate", help="validate one data file against a GX suite")
    if wants("validate"):
        from sluice.cli.validate import add_arguments

        add_arguments(val)
        _json_option(val, "the result document (what --result writes)")
    rpl = sub.add_parser("replay", help="run a past partition again from its manifest; compare")
    aud = sub.add_parser("audit", help="where a row is now, the rules it failed, the run")
    ret = sub.add_parser("retention", help="list or delete what has expired and is not held")
    if wants("replay") or wants("audit") or wants("retention"):
        from sluice.cli import audit as audit_cli

        audit_cli.add_replay_arguments(rpl)
        audit_cli.add_audit_arguments(aud)
        audit_cli.add_retention_arguments(ret)
        _json_option(rpl, "the comparison: inputs, each table's diff, versions")
        _json_option(aud, "the answer: where, failures, run, suite and spec, decisions")
        _json_option(ret, "the plan (expired, held) and, with --apply, what was deleted")
    rev = sub.add_parser("review", help="write a partition's quarantined rows for review")
    rel = sub.add_parser(
        "release", help="apply review decisions: release or fix quarantined rows, with an audit"
    )
    if wants("review") or wants("release"):
        from sluice.cli.review import add_release_arguments, add_review_arguments

        add_review_arguments(rev, _date)
        _json_option(rev, "where the review file went and its rows")
        add_release_arguments(rel, _date)
        _json_option(rel, "the release summary")
    ini = sub.add_parser("init", help="profile sample files; write a suggested spec and suite")
    if wants("init"):
        from sluice.cli.init import add_arguments as init_arguments

        init_arguments(ini)
    return p


def _json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print {what} as JSON on stdout; everything else goes to stderr",
    )


def _prefect_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefect",
        action="store_true",
        help="run as Prefect flows (the default when a Prefect API URL is configured, or with "
        "SLUICE_PREFECT=1); otherwise the stages run in this process",
    )


def _with_prefect(args: argparse.Namespace) -> bool:
    """Whether this command runs as Prefect flows (:func:`sluice.pipeline.local.use_prefect`)."""
    from sluice.pipeline.local import use_prefect

    return use_prefect(bool(args.prefect))


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send standard output to standard error, for Python and for child processes alike.

    When standard output or standard error is closed, only Python's ``sys.stdout`` is
    redirected.
    """
    if sys.stdout is not None:
        sys.stdout.flush()
    saved: int | None = None
    if sys.stdout is not None and sys.stderr is not None:
        try:
            saved = os.dup(1)
            os.dup2(2, 1)
        except OSError:
            if saved is not None:
                os.close(saved)
            saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if sys.stderr is not None:
            sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def _print_json(document: Any) -> None:
    from sluice.core.values import json_safe

    if sys.stdout is None:  # standard output was closed
        return
    sys.stdout.write(json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def _quiet_prefect(verbose: bool) -> None:
    """Keep Prefect's console quiet (its run logs still reach the API, hence the UI).

    A failed flow run's exception would otherwise be printed with its traceback before sluice's
    own one-line message.
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


def _print_summary(summary: dict[str, Any]) -> None:
    if summary.get("skipped"):
        print(
            f"{summary['dataset']} {summary['partition']}: skipped ({summary['status']}): "
            f"{summary['skipped']}"
        )
        print(f"  manifest: {summary['manifest']} (--force screens it again)")
        return
    c = summary["counts"]
    status = str(summary["status"])
    shown = status if status == "passed" else status.upper()
    print(
        f"{summary['dataset']} {summary['partition']}: {shown}: "
        f"{c['in']} rows in, {c['clean']} clean, {c['quarantine']} quarantined"
    )
    for cause in summary.get("causes", []):
        label = "error" if cause.get("level") == "error" else "warning"
        print(f"  {label}: {cause.get('message')}")
    for reason, rows in sorted(c["quarantined_by_reason"].items(), key=lambda kv: -kv[1]):
        print(f"  {rows:>8}  {printable(reason)}")
    print(f"  manifest: {summary['manifest']}")


def printable(text: str) -> str:
    """``text`` for a terminal line: a character that is not printable (a line break or a
    control character in a column's name) shown as its Python escape."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def exit_code(status: str, fail_on: str = "failed") -> int:
    """The exit code of a run's status: 1 when it failed, or warned under ``--fail-on warned``."""
    if status == "failed" or (status == "warned" and fail_on == "warned"):
        return EXIT_FAILED
    return EXIT_OK


def _show_partition_lines(*, verbose: bool) -> None:
    """Print each partition's line of a backfill on stderr as it finishes, terminal or not.

    The lines are the backfill flow's run log lines (:data:`sluice.progress.PARTITION_LOG`);
    with ``--verbose`` Prefect's own console handler prints them already. Imports no Prefect.
    """
    if verbose:
        return
    import logging

    from sluice.progress import PARTITION_LOG, LineHandler

    logger = logging.getLogger(PARTITION_LOG)
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, LineHandler) for h in logger.handlers):
        logger.addHandler(LineHandler())


def _run(args: argparse.Namespace) -> int:
    from sluice.preflight import preflight

    checked = preflight(args.dataset, args.partition, engine=args.engine)
    if _with_prefect(args) and not _dask_run(args, checked.loaded):
        from flows.parameters import flow_value
        from flows.screen import screen_partition
        from sluice.core.errors import RunFailed

        _temporary_api()
        try:
            summary = screen_partition(
                args.dataset, flow_value(args.partition), args.engine, force=args.force
            )
        except RunFailed as exc:
            if exc.summary is None:
                raise
            summary = exc.summary
    else:
        from sluice.pipeline.dask_partition import screen_partition as screen_here

        summary = screen_here(
            args.dataset, args.partition, args.engine, force=args.force, dask=args.dask
        )
    args.document = summary
    _print_summary(summary)
    return exit_code(str(summary["status"]), args.fail_on)


def _backfill(args: argparse.Namespace) -> int:
    from sluice.config import partition_range
    from sluice.preflight import preflight

    checked = preflight(args.dataset, args.start, engine=args.engine)
    try:
        partition_range(checked.loaded.spec.partition, args.start, args.end)
    except ValueError as exc:
        raise_usage(f"backfill {checked.loaded.name}: {exc}")
    if _with_prefect(args) and not _dask_backfill(args, checked.loaded):
        from flows.parameters import flow_value
        from flows.screen import backfill

        _show_partition_lines(verbose=args.verbose)
        _temporary_api()
        start, end = flow_value(args.start), flow_value(args.end)
        summary = backfill(args.dataset, start, end, args.engine, force=args.force)
    else:
        from sluice.pipeline.local import backfill_local

        _show_partition_lines(verbose=False)
        summary = backfill_local(
            args.dataset, args.start, args.end, args.engine, force=args.force, dask=args.dask
        )
    args.document = summary
    for s in [*summary["screened"], *summary["skipped"]]:
        _print_summary(s)
    for f in summary["failed"]:
        if f.get("summary"):
            _print_summary(f["summary"])
        else:
            print(f"{args.dataset} {f['partition']}: FAILED: {f['error']}")
    warned = [s for s in [*summary["screened"], *summary["skipped"]] if s.get("status") == "warned"]
    print(
        f"backfill: {len(summary['screened'])} screened, {len(summary['skipped'])} skipped, "
        f"{len(summary['failed'])} failed ({len(warned)} warned)"
    )
    if summary["failed"]:
        return EXIT_FAILED
    return exit_code("warned" if warned else "passed", args.fail_on)


def _dask_backfill(args: argparse.Namespace, loaded: Any) -> bool:
    """Whether a backfill that would run as Prefect flows runs on a Dask cluster instead
    (:func:`_dask_instead`)."""
    return _dask_instead(
        args,
        loaded,
        "a backfill on a Dask cluster runs from this process; under Prefect, partitions are "
        "flow runs of the deployment",
        "this backfill runs as Prefect flows",
    )


def _dask_run(args: argparse.Namespace, loaded: Any) -> bool:
    """Whether a run that would run as a Prefect flow runs here with its ingest on a Dask
    cluster instead (:func:`_dask_instead`)."""
    return _dask_instead(
        args,
        loaded,
        "a run on a Dask cluster is driven from this process",
        "this run is a Prefect flow",
    )


def _dask_instead(args: argparse.Namespace, loaded: Any, why: str, flow: str) -> bool:
    """Yes with ``--dask`` (refused together with ``--prefect``: ``why``); a cluster set only
    by SLUICE_DASK_ADDRESS or the spec is not used by the Prefect flow (``flow``), which says so."""
    from sluice.pipeline.cluster import resolve_address

    if args.dask is not None and args.dask.strip():
        if args.prefect:
            raise_usage(f"--dask and --prefect do not go together: {why} (docs/production.md)")
        return True
    address = resolve_address(None, loaded)
    if address is not None:
        print(
            f"sluice: the Dask cluster at {address.address} ({address.source}) is not used: "
            f"{flow} (pass --dask to run it on the cluster)",
            file=sys.stderr,
        )
    return False


def _temporary_api() -> None:
    """Start Prefect's temporary API (when no API URL is set) so that it dies with sluice."""
    from flows.temporary_api import start_temporary_api

    start_temporary_api()


def _demo(args: argparse.Namespace) -> int:
    from sluice.cli.demo import run_demo

    prefect = _with_prefect(args)
    _show_partition_lines(verbose=args.verbose and prefect)
    if prefect:
        _temporary_api()
    return run_demo(args.dir, days=args.days, rows=args.rows, seed=args.seed, prefect=prefect)


def _validate(args: argparse.Namespace) -> int:
    from sluice.cli.validate import main as validate_main

    return validate_main(args)


def raise_usage(message: str) -> None:
    """Stop with a usage error (exit code 2)."""
    from sluice.core.errors import SluiceError

    raise SluiceError(message)


def _model(args: argparse.Namespace) -> int:
    from sluice.cli.model import main as model_main

    return model_main(args)


def _baseline(args: argparse.Namespace) -> int:
    from sluice.cli.baseline import main as baseline_main

    return baseline_main(args)


def _serve(args: argparse.Namespace) -> int:
    from sluice.cli.serve import main as serve_main

    return serve_main(args)


def _report(args: argparse.Namespace) -> int:
    from sluice.cli.report import main as report_main

    return report_main(args)


def _init_main(args: argparse.Namespace) -> int:
    from sluice.cli.init import main as init_main

    return init_main(args)


def _audit_command(args: argparse.Namespace) -> int:
    from sluice.cli import audit as audit_cli

    main_of = {
        "replay": audit_cli.replay_main,
        "audit": audit_cli.audit_main,
        "retention": audit_cli.retention_main,
    }
    return main_of[args.command](args)


def _review(args: argparse.Namespace) -> int:
    from sluice.cli.review import review_main

    return review_main(args)


def _release(args: argparse.Namespace) -> int:
    from sluice.cli.review import release_main

    return release_main(args)


COMMANDS = {
    "run": _run,
    "backfill": _backfill,
    "demo": _demo,
    "validate": _validate,
    "report": _report,
    "model": _model,
    "baseline": _baseline,
    "serve": _serve,
    "init": _init_main,
    "replay": _audit_command,
    "audit": _audit_command,
    "retention": _audit_command,
    "review": _review,
    "release": _release,
}


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush has nowhere to fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sluice`` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = _parser(_chosen(words) or "").parse_args(words)
    if args.command in ("run", "backfill", "demo"):
        _quiet_prefect(args.verbose)
    from sluice.core.errors import SluiceError
    from sluice.progress import done

    wants_json = bool(getattr(args, "json", False))
    args.document = None
    code: int | None = None
    try:
        with _stdout_to_stderr() if wants_json else contextlib.nullcontext():
            code = COMMANDS[args.command](args)
        if wants_json and args.document is not None and code in (EXIT_OK, EXIT_FAILED):
            _print_json(args.document)
        if sys.stdout is not None:  # None when started with stdout closed
            sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader of stdout went away (`sluice ... | head`): what was to be done is done
        _stdout_to_devnull()
        return EXIT_PIPE if code is None else code
    except SluiceError as exc:
        done()
        print(f"sluice: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        done()
        print("sluice: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:
        # a Rust panic in polars arrives as pyo3's PanicException, a BaseException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        done()
        if args.debug:
            traceback.print_exc()
        first = str(exc).strip().split("\n", 1)[0]
        print(
            f"sluice: internal error: {type(exc).__name__}: {first} "
            "(run again with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        done()


if __name__ == "__main__":
    sys.exit(main())
