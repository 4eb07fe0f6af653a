"""The client subcommands of `batchgrpc`: their flags, and running them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchgrpc.client.failures import EXIT_CODES_HELP, CommandFailed, Exit

if TYPE_CHECKING:
    from batchgrpc.client import jobs
    from batchgrpc.client.connection import Connection
    from batchgrpc.client.output import Output

DEFAULT_SERVER = "127.0.0.1:50051"
#: The top-level commands this module runs.
COMMANDS = frozenset({"upload", "jobs", "run", "events", "track"})


def _connection_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    group = flags.add_argument_group("server")
    group.add_argument(
        "--server",
        metavar="HOST:PORT",
        default=os.environ.get("BATCHGRPC_SERVER", DEFAULT_SERVER),
        help=f"the server (default {DEFAULT_SERVER}; env BATCHGRPC_SERVER)",
    )
    group.add_argument(
        "--token",
        default=os.environ.get("BATCHGRPC_TOKEN", ""),
        help="the API key's token, sent as Bearer (env BATCHGRPC_TOKEN)",
    )
    group.add_argument("--tls", action="store_true", help="connect with TLS, trusting the system's roots")
    group.add_argument("--ca-file", type=Path, metavar="PEM", help="connect with TLS, trusting this CA (implies --tls)")
    flags.add_argument("--json", action="store_true", help="print the final record as JSON on stdout")
    return flags


def _job_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("job")
    group.add_argument("--name", default="", help="the job's name")
    group.add_argument("--event-name", default="", metavar="E", help="the event name of every row")
    group.add_argument("--default-event-name", default="", metavar="E", help="for rows without an event_name")
    group.add_argument(
        "--event-column", action="append", default=[], metavar="C", help="a column that becomes event data (repeat)"
    )
    group.add_argument(
        "--event-data", action="append", default=[], metavar="K=V", help="static event data for every row (repeat)"
    )
    group.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="SPEC",
        help="a rule NAME[:POLICY[:VALUE_TYPE]], e.g. email:REQUIRED_VALUE:EMAIL (repeat)",
    )
    group.add_argument("--tag", action="append", default=[], metavar="T", help="a tag (repeat)")


def _options(args: argparse.Namespace) -> jobs.JobOptions:
    from batchgrpc.client import jobs

    return jobs.JobOptions(
        name=args.name,
        event_name=args.event_name,
        default_event_name=args.default_event_name,
        event_columns=args.event_column,
        event_data=args.event_data,
        columns=args.column,
        tags=args.tag,
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = _connection_flags()

    def command(
        parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
    ) -> argparse.ArgumentParser:
        return parent.add_parser(
            name,
            help=text,
            description=text,
            parents=[common],
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    upload = command(commands, "upload", "upload a file as a file asset, with a bar of bytes sent")
    upload.add_argument("file", type=Path)
    upload.add_argument("--name", help="the asset's name (default the file's name)")
    upload.add_argument("--format", help="CSV, PSV, JSON or JSONL (default from the file's name)")
    upload.add_argument("--tag", action="append", default=[], metavar="T", help="a tag (repeat)")

    run = command(commands, "run", "upload FILE, create a job on it and watch it to the end")
    run.add_argument("file", type=Path)
    run.add_argument("--format", help="CSV, PSV, JSON or JSONL (default from the file's name)")
    _job_flags(run)

    job_commands = commands.add_parser("jobs", help="batch jobs").add_subparsers(dest="jobs_command", required=True)
    create = command(job_commands, "create", "create a batch job on a data source")
    source = create.add_argument_group("data source (one of)").add_mutually_exclusive_group(required=True)
    source.add_argument("--file-asset", metavar="ID")
    source.add_argument("--report", metavar="ID")
    source.add_argument("--audience-list", metavar="ID")
    _job_flags(create)
    command(job_commands, "watch", "follow a job to its end with a bar of its file read").add_argument("id")
    listing = command(job_commands, "list", "list jobs, newest first")
    listing.add_argument("--name", default="", help="only jobs of this name")
    listing.add_argument("--tag", action="append", default=[], metavar="T", help="only jobs with this tag (repeat)")
    listing.add_argument("--status", action="append", default=[], metavar="S", help="only jobs in this status (repeat)")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    command(job_commands, "get", "show a job").add_argument("id")
    command(job_commands, "cancel", "cancel a job").add_argument("id")
    errors = command(job_commands, "errors", "every row error of a job, all pages")
    errors.add_argument("id")
    errors.add_argument("--csv", action="store_true", help="as CSV: row_number,byte_offset,column,reason,message")

    event_commands = commands.add_parser("events", help="Klaviyo bulk events").add_subparsers(
        dest="events_command", required=True
    )
    send = command(
        event_commands,
        "send",
        "send a JSONL file of event-bulk-create items (one per line) in requests of at most 1,000 events and 5 MB;"
        " a rerun after a failure ingests nothing twice",
    )
    send.add_argument("file", type=Path)

    track_commands = commands.add_parser("track", help="Bloomreach tracking").add_subparsers(
        dest="track_command", required=True
    )
    track_send = command(
        track_commands,
        "send",
        'send a JSONL file of tracking commands ({"name", "data", "command_id"}) in batches of 50',
    )
    track_send.add_argument("file", type=Path)
    track_send.add_argument(
        "--project",
        default=os.environ.get("BATCHGRPC_PROJECT", "default"),
        help="the project token: the key's account (default 'default'; env BATCHGRPC_PROJECT)",
    )


def run(args: argparse.Namespace) -> int:
    # grpc and rich load here, not with the parser: `batchgrpc serve` and
    # `batchgrpc keys` do without them.
    from batchgrpc.client.connection import Connection, Target
    from batchgrpc.client.output import Output

    out = Output(as_json=args.json)
    try:
        conn = Connection(Target(args.server, args.token, args.tls, args.ca_file), out)
        try:
            return _run(args, conn, out)
        finally:
            conn.close()
    except CommandFailed as e:
        print(f"batchgrpc: {e.message}", file=sys.stderr)
        if args.command == "events" and e.exit_code == Exit.UNAVAILABLE:
            print("batchgrpc: rerun the same command to send the rest: nothing is ingested twice.", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return Exit.OK
    except KeyboardInterrupt:
        print("batchgrpc: interrupted", file=sys.stderr)
        if args.command in ("events", "track"):
            print("batchgrpc: rerun the same command to send the rest: nothing is sent twice.", file=sys.stderr)
        return Exit.INTERRUPTED


def _run(args: argparse.Namespace, conn: Connection, out: Output) -> int:
    from batchgrpc.client import events, files, jobs, track

    if args.command == "upload":
        asset = files.upload(conn, out, args.file, name=args.name, file_format=args.format, tags=args.tag)
        out.result(files.describe(asset), asset)
        return Exit.OK
    if args.command == "run":
        return jobs.run(conn, out, args.file, args.format, _options(args))
    if args.command == "events":
        return events.send(conn, out, args.file)
    if args.command == "track":
        return track.send(conn, out, args.file, args.project)
    return _jobs(args, conn, out)


def _jobs(args: argparse.Namespace, conn: Connection, out: Output) -> int:
    from batchgrpc.client import jobs
    from batchgrpc.client.output import as_dict

    pb = jobs.pb
    match args.jobs_command:
        case "create":
            if args.file_asset:
                source = pb.DataSource(type=pb.DataSource.FILE_ASSET, file_asset_id=args.file_asset)
            elif args.report:
                source = pb.DataSource(type=pb.DataSource.REPORT, report_id=args.report)
            else:
                source = pb.DataSource(type=pb.DataSource.AUDIENCE_LIST, audience_list_id=args.audience_list)
            job = jobs.create(conn, jobs.create_request(source, _options(args)))
            out.result(jobs.describe(job), job)
            return Exit.OK
        case "watch":
            job = jobs.watch(conn, out, args.id)
            out.result(jobs.describe(job), job)
            return jobs.EXIT_BY_STATUS[job.status]
        case "list":
            found = jobs.list_jobs(conn, limit=args.limit, name=args.name, tags=args.tag, statuses=args.status)
            out.result(
                "\n".join(
                    f"{j.id}  {jobs.status_name(j)}  {j.name or '-'}  {j.rows_read} rows  "
                    f"{j.success_rows} ok  {j.failed_rows} failed"
                    for j in found
                )
                or "no jobs",
                [as_dict(j) for j in found],
            )
            return Exit.OK
        case "get":
            job = jobs.get(conn, args.id)
            out.result(jobs.describe(job), job)
            return Exit.OK
        case "cancel":
            job = jobs.cancel(conn, args.id)
            out.result(jobs.describe(job), job)
            return Exit.OK
        case _:
            return jobs.print_errors(conn, out, args.id, as_csv=args.csv)
