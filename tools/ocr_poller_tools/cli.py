"""The `ocr-poller` command: the emulator, the local stack, submit, status and redrive."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ocr_poller.config import DEFAULT_ASPOSE_BASE_URL
from ocr_poller.request import ENDPOINTS
from ocr_poller_tools.errors import ToolError

if TYPE_CHECKING:
    from ocr_poller.adapters.aspose import Credentials
    from ocr_poller_tools.localrun import ApiAccess
    from ocr_poller_tools.stackclient import StackClient

EXIT_FAILED = 1  # an error, or a task that ended other than Completed
EXIT_USAGE = 2  # as argparse
EXIT_RUNNING = 3  # `status` without --wait: the task has not ended yet
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script: every failure is one `ocr-poller: error: …` line."""
    try:
        args = _parser().parse_args(argv)
        command: Callable[[argparse.Namespace], int] = args.run
        code = command(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except _UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ToolError as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        # The reader left (`status … | head`); point stdout at /dev/null so the exit's flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _fail("the output was closed before everything was written")
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        # A bug, not a user's problem: still one line, as the contract promises; the type says where to look.
        return _fail(f"unexpected {type(exc).__name__}: {exc} (a bug in ocr-poller; please report it)")


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"ocr-poller: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return code


class _UsageError(ToolError):
    """The command line itself is wrong."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("ocr-poller").strip()
        raise _UsageError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ocr-poller", description=__doc__, formatter_class=_Formatter)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, formatter_class=_Formatter)
        sub.set_defaults(run=run)
        return sub

    def env_file(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--env-file",
            type=Path,
            metavar="PATH",
            help="read the variables (AWS_*, RESULTS_TABLE, POLL_QUEUE_URL, …) from this dotenv file"
            " instead of the environment",
        )

    emulator = command("emulator", _emulator, "serve an Aspose.OCR Cloud v5 emulator on 127.0.0.1")
    emulator.add_argument("--port", type=int, default=8089, help="port on 127.0.0.1 (0: any free port)")
    emulator.add_argument(
        "--processing-seconds", type=float, default=3.0, help="time until a task is Completed"
    )
    emulator.add_argument("--client-id", help="accept only this client id (default: any)")
    emulator.add_argument("--client-secret", help="accept only this client secret (default: any)")

    local = command(
        "local",
        _local,
        "run the poller on this machine: moto's AWS server with the template's resources, the emulator"
        " (or the real API) and the handler; the demo by default, or --serve",
    )
    local.add_argument(
        "--serve",
        action="store_true",
        help="keep the stack running for submit/status/redrive until SIGINT or SIGTERM (needs --env-file)",
    )
    local.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help="with --serve: write the stack's variables here once ready",
    )
    local.add_argument("--processing-seconds", type=float, default=6.0, help="emulated task duration")
    local.add_argument("--task-id", help="poll this real task instead (needs ASPOSE_CLIENT_ID/SECRET)")
    local.add_argument(
        "--endpoint", default="RecognizeLabel", choices=ENDPOINTS, metavar="ENDPOINT", help="with --task-id"
    )
    local.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    local.add_argument(
        "--template", type=Path, help="template to build (default: the package's template.yaml)"
    )
    local.add_argument("--aws-port", type=int, default=0, help="port of moto's server (0: any free port)")
    local.add_argument("--api-port", type=int, default=0, help="port of the emulator (0: any free port)")
    local.add_argument("--log-level", default="WARNING", help="the function's log level")

    submit = command("submit", _submit, "send a file to the API and enqueue its poll request")
    submit.add_argument("file", type=Path, metavar="FILE", help="image or PDF (text for ConvertTextToSpeech)")
    submit.add_argument(
        "--endpoint",
        default="RecognizeLabel",
        choices=ENDPOINTS,
        metavar="ENDPOINT",
        help="one of " + ", ".join(ENDPOINTS),
    )
    submit.add_argument("--result-type", help="settings.resultType, e.g. Text, Pdf, TextAndPdf, Hocr")
    submit.add_argument("--no-enqueue", action="store_true", help="only print the task id")
    env_file(submit)

    status = command("status", _status, "print a task's record; exit 0 only when it ended Completed")
    status.add_argument("task_id", metavar="TASK_ID", help="the id the API answered to the submission")
    status.add_argument("--wait", action="store_true", help="block until the task ends")
    status.add_argument("--interval", type=float, default=1.0, help="with --wait: seconds between reads")
    status.add_argument("--timeout", type=float, default=0.0, help="with --wait: give up after (0: never)")
    status.add_argument(
        "--download", type=Path, metavar="DIR", help="fetch the stored results into DIR/TASK_ID/"
    )
    env_file(status)

    redrive = command(
        "redrive",
        _redrive,
        "move the dead-letter queue back to the poll queue, leaving requests the function rejects as invalid",
    )
    redrive.add_argument("--dry-run", action="store_true", help="list the messages, move nothing")
    redrive.add_argument("--include-invalid", action="store_true", help="move the invalid requests too")
    env_file(redrive)
    return parser


def _variables(args: argparse.Namespace) -> tuple[Mapping[str, str], str]:
    """The command's variables and where they come from: the --env-file, or the environment."""
    from ocr_poller_tools.envfile import read_env_file

    if args.env_file is not None:
        return read_env_file(args.env_file), str(args.env_file)
    return os.environ, "the environment"


def _emulator(args: argparse.Namespace) -> int:
    from ocr_poller_tools.emulator import main_emulator

    try:
        main_emulator(args.port, args.processing_seconds, args.client_id, args.client_secret)
    except OSError as exc:
        raise ToolError(f"--port {args.port}: {exc.strerror}") from exc
    return 0


def _local(args: argparse.Namespace) -> int:
    """Check everything that can be checked first, then start the stack and run the demo or serve."""
    from ocr_poller_tools.envfile import check_env_file_target

    if args.serve and args.env_file is None:
        raise ToolError("--serve needs --env-file PATH (where the other commands find the stack)")
    if args.env_file is not None and not args.serve:
        raise ToolError("--env-file goes with --serve")
    if args.serve and args.task_id:
        raise ToolError("--task-id goes without --serve (a served stack takes tasks from submit)")
    if args.serve:
        check_env_file_target(args.env_file)
        # A file left by a stack that was killed must not look like this one before it is ready.
        args.env_file.unlink(missing_ok=True)
    api = None
    if args.task_id:
        _check_task_id(args.task_id, args.endpoint)
        api = _real_api(os.environ)
    from ocr_poller_tools.localrun import LocalRun, LocalStack, serve, template_file

    with (
        template_file(args.template) as template,
        LocalStack.start(
            template,
            api=api,
            processing_seconds=args.processing_seconds,
            aws_port=args.aws_port,
            api_port=args.api_port,
            log_level=args.log_level,
        ) as local,
    ):
        if args.serve:
            return serve(local, args.env_file, sys.stdout)
        print(f"moto's AWS server: {local.moto.url}; Aspose API: {local.api.base_url}", flush=True)
        run = LocalRun(local, sys.stdout, timeout=args.timeout)
        return run.run_task(args.task_id, args.endpoint) if args.task_id else run.run_samples()


def _check_task_id(task_id: str, endpoint: str) -> None:
    """Refuse at once a task id the function would reject, with the function's own reason."""
    from ocr_poller.errors import Refused
    from ocr_poller.request import parse_document

    try:
        parse_document({"taskId": task_id, "endpoint": endpoint}, default_endpoint=endpoint)
    except Refused as exc:
        raise ToolError(f"the poller rejects this request: {exc}") from exc


def _real_api(env: Mapping[str, str]) -> ApiAccess:
    from ocr_poller.adapters.aspose import Credentials
    from ocr_poller_tools.localrun import ApiAccess

    client_id, client_secret = env.get("ASPOSE_CLIENT_ID"), env.get("ASPOSE_CLIENT_SECRET")
    if not client_id or not client_secret:
        raise ToolError(
            "polling a real task needs ASPOSE_CLIENT_ID and ASPOSE_CLIENT_SECRET in the environment"
        )
    base_url = env.get("ASPOSE_BASE_URL") or DEFAULT_ASPOSE_BASE_URL
    return ApiAccess(base_url.rstrip("/"), Credentials(client_id, client_secret))


def _submit(args: argparse.Namespace) -> int:
    """Check the poll queue, send the file to ASPOSE_BASE_URL, then enqueue the new task's poll request."""
    from ocr_poller.errors import Redeliver, RetryLater
    from ocr_poller_tools.stackclient import StackClient
    from ocr_poller_tools.submission import SubmitError, SubmittingApi, submission_body

    variables, source = _variables(args)
    if not args.file.is_file():
        raise ToolError(f"{args.file}: {'a folder, not a file' if args.file.is_dir() else 'no such file'}")
    stack = StackClient(variables, source)
    if not args.no_enqueue:
        # A task created at Aspose is billed: make sure its poll request has somewhere to go first.
        stack.check_queue()
    base_url = (variables.get("ASPOSE_BASE_URL") or DEFAULT_ASPOSE_BASE_URL).rstrip("/")
    credentials = _aspose_credentials(stack)
    try:
        body = submission_body(args.endpoint, args.file.read_bytes(), result_type=args.result_type)
        task_id = SubmittingApi(base_url, lambda: credentials).submit(args.endpoint, body)
    except OSError as exc:
        raise ToolError(f"{args.file}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ToolError(f"{args.file}: {args.endpoint} wants UTF-8 text") from exc
    except RetryLater as exc:
        raise ToolError(f"cannot reach the API at {base_url}: {exc}") from exc
    except (SubmitError, Redeliver) as exc:  # Redeliver: the token endpoint refused the credentials
        raise ToolError(str(exc)) from exc
    print(task_id, flush=True)
    if not args.no_enqueue:
        try:
            stack.enqueue(task_id, args.endpoint)
        except ToolError as exc:
            raise ToolError(f"task {task_id} was created but its poll request was not queued: {exc}") from exc
        print(f"poll request queued on {variables['POLL_QUEUE_URL']}", file=sys.stderr)
    return 0


def _aspose_credentials(stack: StackClient) -> Credentials:
    """The API's credentials: from the secret ASPOSE_CREDENTIALS_SECRET names, or given directly."""
    from ocr_poller.adapters.aspose import Credentials
    from ocr_poller_tools.stackclient import aws_errors

    env = stack.variables
    secret_name = env.get("ASPOSE_CREDENTIALS_SECRET")
    if secret_name:
        with aws_errors(f"secret {secret_name}"):
            secret = stack.secrets.get_secret_value(SecretId=secret_name)["SecretString"]
        try:
            document = json.loads(secret)
            return Credentials(str(document["clientId"]), str(document["clientSecret"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ToolError(f"secret {secret_name} must hold clientId and clientSecret") from exc
    if env.get("ASPOSE_CLIENT_ID") and env.get("ASPOSE_CLIENT_SECRET"):
        return Credentials(env["ASPOSE_CLIENT_ID"], env["ASPOSE_CLIENT_SECRET"])
    raise ToolError(
        f"set ASPOSE_CREDENTIALS_SECRET, or ASPOSE_CLIENT_ID and ASPOSE_CLIENT_SECRET, in {stack.source}"
    )


def _status(args: argparse.Namespace) -> int:
    """Print the task's record; with --wait only once it ended; with --download fetch its results."""
    from ocr_poller_tools.stackclient import RUNNING, StackClient

    _check_task_id(args.task_id, "RecognizeLabel")
    variables, source = _variables(args)
    if args.download is not None and args.download.exists() and not args.download.is_dir():
        raise ToolError(f"{args.download} exists and is not a folder")
    stack = StackClient(variables, source)
    if args.wait:

        def changed(record: dict[str, Any] | None) -> None:
            state = (
                "no record yet (waiting for its first check; is the id right?)"
                if record is None
                else f"{record['status']} after {record['attempts']} check(s)"
            )
            print(f"task {args.task_id}: {state}", file=sys.stderr, flush=True)

        record = stack.wait(args.task_id, interval=args.interval, timeout=args.timeout, on_change=changed)
    else:
        record = stack.record(args.task_id)
    if record is None:
        raise ToolError(f"no record for task {args.task_id} in table {stack.required('RESULTS_TABLE')}")
    print(json.dumps(record, indent=2, ensure_ascii=False))
    sys.stdout.flush()
    status = record["status"]
    if status in RUNNING:
        hint = (
            f"still {status} after {args.timeout:g} s" if args.wait else f"is still {status} (--wait waits)"
        )
        _fail(f"task {args.task_id} {hint}", EXIT_RUNNING)
        return EXIT_RUNNING
    if args.download is not None:
        for path in stack.download(record, args.download):
            print(f"downloaded {path}", file=sys.stderr)
    if status != "Completed":
        messages = "; ".join(record.get("errorMessages", []))
        raise ToolError(f"task {args.task_id} ended {status}" + (f": {messages}" if messages else ""))
    return 0


def _redrive(args: argparse.Namespace) -> int:
    """List each dead letter with its reason and what happens to it; move the valid ones."""
    from ocr_poller_tools.redrive import DeadLetter, redrive
    from ocr_poller_tools.stackclient import StackClient

    variables, source = _variables(args)

    def show(letter: DeadLetter) -> None:
        if letter.moved:
            action = "moved"
        elif letter.invalid is None or args.include_invalid:
            action = "would move" if args.dry_run else "moved"
        else:
            action = "left (invalid)"
        reason = letter.reject_reason or letter.invalid or "its checks failed too often"
        print(
            f"{letter.message_id}  {action:14}  taskId={letter.task_id or '-'}  reason: {reason}", flush=True
        )

    letters = redrive(
        StackClient(variables, source),
        dry_run=args.dry_run,
        include_invalid=args.include_invalid,
        on_message=show,
    )
    moved = sum(letter.moved for letter in letters)
    invalid = sum(letter.invalid is not None and not letter.moved for letter in letters)
    summary = f"{len(letters)} dead letter(s): {moved} moved to the poll queue"
    if args.dry_run:
        summary += " (a dry run moves none)"
    elif invalid:
        summary += f", {invalid} invalid left (--include-invalid moves them)"
    print(summary, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
