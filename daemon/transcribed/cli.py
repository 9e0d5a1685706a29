"""The `transcribed` command: run, transcribe, config, doctor, status, retry, retention, pause,
resume.

Exit codes: 0 clean stop, 1 anything else, 2 bad configuration or usage (the message names the
key), 3 the GPU was lost (restart for a fresh CUDA context).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from . import __version__, logs
from .config import CONFIG_ENV, Config, load_config, render_yaml
from .errors import ConfigError, FailedIn, TranscribedError
from .service import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_OK,
    Service,
    build_engine,
    load_later_stages,
    refuse_what_the_model_cannot_do,
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.command(args))
    except ConfigError as exc:
        logs.get_logger().error("daemon.config_error", error=str(exc))
        print(f"transcribed: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except TranscribedError as exc:
        logs.get_logger().error("daemon.error", error=str(exc))
        print(f"transcribed: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transcribed", description="A watch-folder transcription daemon (WhisperX).")
    parser.add_argument("--version", action="version", version=f"transcribed {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    config_help = f"the YAML configuration (default: ${CONFIG_ENV}, else built-in defaults)"

    run = commands.add_parser("run", help="watch the inbox and transcribe what arrives")
    run.add_argument("--config", type=Path, help=config_help)
    run.add_argument("--engine", choices=["whisperx", "fake"], default="whisperx",
                     help=argparse.SUPPRESS)  # fake: for tests and soak runs ($TRANSCRIBED_FAKE)
    run.set_defaults(command=_run)

    transcribe = commands.add_parser("transcribe", help="transcribe some files now, then exit")
    transcribe.add_argument("files", nargs="+", type=Path, metavar="FILE")
    transcribe.add_argument("--config", type=Path, help=config_help)
    transcribe.add_argument("--out", type=Path, default=Path("."), help="where results go (default: .)")
    transcribe.add_argument("--engine", choices=["whisperx", "fake"], default="whisperx",
                            help=argparse.SUPPRESS)  # fake: for tests ($TRANSCRIBED_FAKE)
    transcribe.set_defaults(command=_transcribe)

    show = commands.add_parser("config", help="print the effective configuration as YAML")
    show.add_argument("--config", type=Path, help=config_help)
    show.set_defaults(command=_show_config)

    doctor = commands.add_parser("doctor", help="check the GPU, the model and the folders")
    doctor.add_argument("--config", type=Path, help=config_help)
    doctor.add_argument("--json", action="store_true", help="one JSON object for machines")
    doctor.set_defaults(command=_doctor)

    status = commands.add_parser(
        "status", help="what each daemon sharing the state folder is doing (its status file)",
        description="Print the status files of every daemon that shares folders.state. With "
        "--check, exit 0 only if this machine runs a daemon and each one here is healthy (model "
        "loaded, consumer heartbeat fresh): Docker's HEALTHCHECK.")
    status.add_argument("--config", type=Path, help=config_help)
    status.add_argument("--check", action="store_true",
                        help="judge this machine's daemons: exit 0 healthy, 1 not")
    status.add_argument("--json", action="store_true", help="one JSON object for machines")
    status.set_defaults(command=_status)
    retry = commands.add_parser(
        "retry", help="take a library file (or every file under a folder) again",
        description="Cancel what the library ledger says of PATH (failed, done, embedded "
        "subtitles), or of every file under it when PATH is a folder, so the daemons' next scan "
        "takes it again. A file with a subtitle beside it in the wanted language is still passed by.")
    retry.add_argument("path", type=Path, metavar="PATH")
    retry.add_argument("--config", type=Path, help=config_help)
    retry.set_defaults(command=_retry)
    retention = commands.add_parser(
        "retention", help="remove (or archive) the finished items retention.* says are due",
        description="One retention pass now, as the daemon makes them (each item removed or "
        "archived is logged); with --dry-run, only list what would go and why.")
    retention.add_argument("--config", type=Path, help=config_help)
    retention.add_argument("--dry-run", action="store_true", help="list what would go; touch nothing")
    retention.add_argument("--json", action="store_true", help="--dry-run's list as one JSON object")
    retention.set_defaults(command=_retention)
    pause = commands.add_parser(
        "pause", help="start no new job (every daemon on the state folder) until resumed or a time",
        description="Write the pause file in folders.state: every daemon sharing that folder (on "
        "this host or another) finishes its running job and starts no new one; files keep "
        "arriving and are counted. A daemon started meanwhile stays paused. Says what the "
        "daemons said, from their status files.")
    pause.add_argument("--config", type=Path, help=config_help)
    ends = pause.add_mutually_exclusive_group()
    ends.add_argument("--until", metavar="TIME", help="resume by itself then: 18:00 or 2025-03-01T08:00")
    ends.add_argument("--for", dest="duration", metavar="DURATION", help="resume after 90m, 2h, 1h30m...")
    pause.add_argument("--now", action="store_true",
                       help="the running jobs go back to the inbox untouched instead of finishing")
    pause.add_argument("--reason", help="said in the status, the log and /healthz")
    pause.add_argument("--wait", type=float, default=15.0, metavar="SECONDS",
                       help="how long to wait for the daemons to say so (default 15)")
    pause.set_defaults(command=_pause)
    resume = commands.add_parser("resume", help="remove the pause file: the daemons take files again",
                                 description="Remove the pause `transcribed pause` wrote (quiet "
                                 "hours, the config's schedule.quiet, still apply).")
    resume.add_argument("--config", type=Path, help=config_help)
    resume.add_argument("--wait", type=float, default=15.0, metavar="SECONDS",
                        help="how long to wait for the daemons to say so (default 15)")
    resume.set_defaults(command=_resume)
    return parser


def _pause(args: argparse.Namespace) -> int:
    """`transcribed pause`: what it did, one line per daemon on the state folder."""
    from .operations import pause_command

    until = pause_command.parse_until(args.until, args.duration)
    state = load_config(args.config).folders.state
    print("\n".join(pause_command.pause(state, until, args.now, args.reason, args.wait)))
    return EXIT_OK


def _resume(args: argparse.Namespace) -> int:
    from .operations import pause_command

    state = load_config(args.config).folders.state
    print("\n".join(pause_command.resume(state, args.wait)))
    return EXIT_OK


def _retention(args: argparse.Namespace) -> int:
    """`transcribed retention`: one pass (its events on stdout), or what would go (--dry-run)."""
    import json

    from .retention import Keeper

    config = _load(args)
    keeper = Keeper(config)
    if not keeper.policies:
        print("retention: every folder keeps everything (retention.* is off)", file=sys.stderr)
        return EXIT_OK
    if not args.dry_run:
        summary = keeper.run_pass()
        if summary is None:
            print("transcribed: another retention pass is running (a daemon's): try again later",
                  file=sys.stderr)
            return EXIT_ERROR
        return EXIT_OK
    chosen = keeper.plan()
    if args.json:
        print(json.dumps({name: [v.as_dict() for v in verdicts] for name, verdicts in chosen.items()},
                         indent=2, ensure_ascii=False))
    else:
        lines = keeper.describe(chosen)
        print("\n".join(lines) if lines else "retention: nothing is due")
    return EXIT_OK


def _retry(args: argparse.Namespace) -> int:
    """`transcribed retry PATH`: one line per file forgotten; exit 1 when the ledger had none."""
    from .library.ledger import forget

    forgotten = forget(load_config(args.config).folders.state, args.path)
    for entry in forgotten:
        print(f"retry: {entry.path} (was {entry.outcome})")
    if not forgotten:
        print(f"transcribed: the library ledger records nothing at or under {args.path}", file=sys.stderr)
    return EXIT_OK if forgotten else EXIT_ERROR


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    logs.configure(config.log.format, config.log.level)
    return config


def _run(args: argparse.Namespace) -> int:
    logs.configure()  # until the config says otherwise: errors in it are logged as JSON too
    return Service(_load(args), engine_kind=args.engine).run()


def _show_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    sys.stdout.write(render_yaml(config))
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import run_doctor

    return run_doctor(load_config(args.config), as_json=args.json)


def _status(args: argparse.Namespace) -> int:
    """Read the status files; print them, or judge this machine's daemons (--check)."""
    import json

    from .hooks import pending
    from .operations import status_file as status
    from .operations.pause_command import describe_pause, pause_file_of

    state = load_config(args.config).folders.state
    records = status.read_all(state)
    healthy, lines = status.check(records)
    hooks = pending.summary(state)
    paused = pause_file_of(state)
    if args.json:
        workers = [{**r, "verdict": status.judge(r).as_dict(), "local": status.is_local(r)}
                   for r in records]
        body: dict[str, Any] = {"status_dir": str(status.status_dir(state)), "workers": workers,
                                "hooks": hooks, "pause": paused.as_dict() if paused else None}
        if args.check:
            body["check"] = {"healthy": healthy, "lines": lines}
        print(json.dumps(body, indent=2, ensure_ascii=False))
    elif args.check:
        print("\n".join(lines))
    else:
        sys.stdout.write(status.render(records, status.status_dir(state)))
        if paused is not None:
            sys.stdout.write(f"\npause file: {describe_pause(paused)}; `transcribed resume` removes it\n")
        if hook_lines := pending.describe(hooks):
            sys.stdout.write("\n" + "".join(f"{line}\n" for line in hook_lines))
    return (EXIT_OK if healthy else EXIT_ERROR) if args.check else EXIT_OK


def _reading_in_place(config: Config, files: list[Path]) -> Config:
    """The files named on the command line are read in place, through a link in each job's
    folder: links into their folders are followed (the daemon follows none by default)."""
    roots = tuple(sorted({str(f.resolve().parent) for f in files}))
    return dataclasses.replace(config, input=dataclasses.replace(
        config.input, follow_symlinks=True, symlink_roots=roots))


def _transcribe(args: argparse.Namespace) -> int:
    """The daemon's engine and outputs for a few files: each is read in place, results go to --out.
    On a terminal, a progress bar per file, with the log lines printed above the bars."""
    from .durable import move_no_clobber
    from .spool.jobs import Job
    from .terminal import file_bar, log_stream_above_bars
    from .transcription.pipeline import Pipeline

    logs.configure()
    config = _load(args)
    bars = sys.stdout.isatty()
    if bars:
        logs.configure(config.log.format, config.log.level, stream=log_stream_above_bars(sys.stdout))
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise ConfigError(f"FILE: no such file: {', '.join(missing)}")
    config = _reading_in_place(config, args.files)
    engine = build_engine(config, args.engine)
    engine.load()
    refuse_what_the_model_cannot_do(config, engine)
    aligner, diarizer = load_later_stages(config, engine) if args.engine == "whisperx" else (None, None)
    pipeline = Pipeline(config, engine, heartbeat=lambda: None, worker_name="transcribe",
                        aligner=aligner, diarizer=diarizer)
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in args.files:
        with tempfile.TemporaryDirectory(prefix="transcribed-") as tmp:
            job = Job(id=path.name, relpath=PurePosixPath(path.name), dir=Path(tmp), attempts=1)
            job.source.parent.mkdir()
            job.source.symlink_to(path.resolve())
            job.staging.mkdir()
            try:
                with file_bar(path.name, sys.stdout, shown=bars) as bar:
                    pipeline.progress.on_progress = bar.update if bar is not None else None
                    finished = pipeline.run(job)
                    if bar is not None:
                        bar.done()
            except TranscribedError as exc:
                stage, error = (exc.stage, exc.error) if isinstance(exc, FailedIn) else (None, exc)
                logs.get_logger().error("job.failed", file=str(path), error=str(error), stage=stage)
                failures += 1
                continue
            for output in finished.outputs.values():
                target = args.out / output.name
                n = 2
                while not move_no_clobber(output, target):
                    target, n = args.out / f"{output.stem}.{n}{output.suffix}", n + 1
                logs.get_logger().info("job.output", file=str(path), output=str(target))
    return EXIT_ERROR if failures else EXIT_OK
