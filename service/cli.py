"""The `intake` command line: every command of the README, one line per error, no tracebacks.

stdout carries only what a command was asked to print (so `intake export --format json | jq`
works); logs and progress go to stderr. Exit 2 for configuration errors, 1 for failures.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from config.errors import ConfigError, IntakeError
from config.settings import Settings, load_settings

app_cli = typer.Typer(
    name="intake",
    help="Email-driven intake of case recommendations: poll, pair, match, receipt, digest.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="The database schema.", no_args_is_help=True)
submissions_cli = typer.Typer(help="Online-system exports.", no_args_is_help=True)
results_cli = typer.Typer(help="Staff decisions (入选 / 未入选).", no_args_is_help=True)
pair_cli = typer.Typer(help="Manual decisions that win over automatic ones.", no_args_is_help=True)
templates_cli = typer.Typer(help="Mail templates.", no_args_is_help=True)
staff_cli = typer.Typer(help="Staff accounts of the workspace.", no_args_is_help=True)
imports_cli = typer.Typer(help="Imports made (CLI, watch folder, workspace).", no_args_is_help=True)
app_cli.add_typer(db_cli, name="db")
app_cli.add_typer(submissions_cli, name="submissions")
app_cli.add_typer(results_cli, name="results")
app_cli.add_typer(pair_cli, name="pair")
app_cli.add_typer(templates_cli, name="templates")
app_cli.add_typer(staff_cli, name="staff")
app_cli.add_typer(imports_cli, name="imports")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
T = TypeVar("T")


class State:
    """The --config option, resolved lazily so that `--help` never reads anything."""

    config: Path | None = None
    settings: Settings | None = None


def settings() -> Settings:
    """The settings for this invocation (exit 2 with one line when they are wrong)."""
    if State.settings is None:
        State.settings = load_settings(State.config)
    return State.settings


def build_app() -> Any:
    """Bootstrap the application (imported late: `--help` stays fast)."""
    from service.bootstrap import bootstrap
    from service.db import require_schema

    application = bootstrap(settings(), log=lambda line: logging.getLogger("intake").info(line))
    require_schema(application.engine)
    return application


def run(action: Callable[[], T]) -> T:
    """Run a command body, turning our errors into one line and an exit status."""
    try:
        return action()
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except IntakeError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:
        from service.faults import one_line, transient_fault

        fault = transient_fault(exc)
        if fault is not None:  # a passing fault: say so, no traceback, nothing was lost
            err.print(
                f"[red]{fault} unavailable:[/red] {one_line(exc)} — nothing was lost; "
                "run the command again once it is back",
                highlight=False,
            )
            raise typer.Exit(1) from None
        # a bug: one line for the user, the traceback with -v
        logging.getLogger("intake").debug("internal error", exc_info=True)
        err.print(
            f"[red]internal error:[/red] {exc!r} — please report it; run again with -v for "
            "the traceback",
            highlight=False,
        )
        raise typer.Exit(1) from None


def first_poll_notice(count: int) -> str:
    """What the terminal says after the first poll of a mailbox that already held mail."""
    return (
        f"首次读取邮箱：邮箱中已有{count}封来信，均已登记和处理，但不会自动回复这些来信。"
        "如需回复，请在配置中填写征集开始时间，或设置为回复旧邮件后重新处理。"
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


@app_cli.callback()
def main_options(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML settings file.", show_default=False)
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """intake: the CACE case-collection contact mailbox, read for you."""
    State.config = config
    State.settings = None
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in (
        "imapclient",
        "imaplib",
        "mail-parser",
        "mailparser",
        "pypdf",
        "alembic",
        "aiosmtplib",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema (Alembic); safe to run again."""

    def body() -> None:
        from service.db import create_db_engine, schema_revision, upgrade_schema

        engine = create_db_engine(settings().database.url)
        upgrade_schema(engine)
        err.print(f"schema at revision {schema_revision(engine)} ({engine.url.render_as_string()})")
        engine.dispose()

    run(body)


@app_cli.command("poll")
def poll_command(
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit.")] = True,
) -> None:
    """Fetch new mail, archive, parse, record, pair, match and queue mail."""

    def body() -> int:
        from service.ingest import poll

        application = build_app()
        with _progress() as progress:
            task = progress.add_task("fetching", total=None)
            report = poll(
                application,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        if report.skipped_busy:
            err.print("another process is polling this mailbox; nothing done")
            return 0
        err.print(
            f"listed {report.listed}, archived {report.archived}, duplicates {report.duplicates}, "
            f"too large {report.too_large}, processed {report.processed}, "
            f"needs attention {report.needs_attention}, waiting {report.deferred}, "
            f"marked {report.marked}"
        )
        status = 0
        if application.settings.ocr.enabled:
            # a one-shot run ends complete: the scans it fetched are read, their receipts queued
            from service.ocr_jobs import read_queued_scans

            scans = read_queued_scans(application, err)
            if scans.done or scans.failed:
                err.print(
                    f"scans read {scans.done}, could not be read {scans.failed} (left to staff)",
                    highlight=False,
                )
            if scans.unavailable:
                err.print(f"[red]OCR unavailable:[/red] {scans.unavailable}", highlight=False)
                status = 1
        else:  # receipts held while OCR was on go out now
            from service.ocr_jobs import release_held_receipts

            release_held_receipts(application)
        if report.old_mail:
            err.print(first_poll_notice(report.old_mail), highlight=False)
        if report.error:
            err.print(f"[red]mailbox error:[/red] {report.error}", highlight=False)
            return 1
        return status

    raise typer.Exit(run(body))


@app_cli.command("deliver")
def deliver_command() -> None:
    """Send what the outbox holds, once."""

    def body() -> int:
        from service.outbox import deliver

        report = deliver(build_app())
        if report.skipped_busy:
            err.print("another process is delivering; nothing sent by this one")
            return 0
        err.print(f"sent {report.sent}, retry later {report.retried}, failed {report.failed}")
        for line in report.errors[:20]:
            err.print(f"  {line}", highlight=False)
        return 1 if report.errors else 0

    raise typer.Exit(run(body))


@app_cli.command("digest")
def digest_command(
    print_only: Annotated[
        bool, typer.Option("--print", help="Print it instead of queuing it.")
    ] = False,
) -> None:
    """Queue (or print) the staff digest for now."""

    def body() -> None:
        from service.digest import queue_digest, render_digest

        application = build_app()
        if print_only:
            out.print(render_digest(application), highlight=False, markup=False)
        else:
            err.print(f"digest queued for {queue_digest(application)} staff address(es)")

    run(body)


@submissions_cli.command("import")
def submissions_import(
    files: Annotated[list[Path], typer.Argument(help="Exports (.xlsx / .csv).")],
    complete: Annotated[
        bool,
        typer.Option(
            "--complete",
            help="The file is the whole export: submissions missing from it are withdrawn.",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm withdrawing more than 10 % at once.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; change nothing.")
    ] = False,
) -> None:
    """Upsert online-system exports by 申报编号 and re-run matching.

    A submission is withdrawn only when the export's status column says so, or with
    --complete when it is missing from the file; never because a filtered file lacks it.
    """

    def body() -> int:
        from service.imports import import_submissions

        application = build_app()
        status = 0
        for path in files:
            try:
                report = import_submissions(
                    application, path, complete=complete, confirm=yes, dry_run=dry_run
                )
            except IntakeError as exc:
                err.print(f"[red]{path}:[/red] {exc}", highlight=False)
                status = 1
                continue
            would = "would be: " if dry_run else ""
            out.print(
                f"{path}: {would}added {len(report.added)}, changed {len(report.changed)}, "
                f"unchanged {len(report.unchanged)}, withdrawn {len(report.withdrawn)}, "
                f"rejected {len(report.rejected)}"
                + (" (dry run: nothing changed)" if dry_run else ""),
                highlight=False,
            )
            if dry_run:
                _print_refs("added", report.added)
                _print_refs("changed", report.changed)
                _print_refs("withdrawn", report.withdrawn)
            elif report.withdrawn:
                _print_refs("withdrawn", report.withdrawn)
            for line in [*report.rejected, *report.warnings]:
                out.print(f"  {line}", highlight=False, markup=False)
        return status

    raise typer.Exit(run(body))


def _print_refs(what: str, refs: list[str]) -> None:
    if refs:
        out.print(f"  {what}: {', '.join(refs)}", highlight=False, markup=False, soft_wrap=True)


@results_cli.command("import")
def results_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="Decisions (.xlsx / .csv): 申报编号, 结果, 给申报单位的说明, 内部备注."
        ),
    ],
    resend_changed: Annotated[
        bool, typer.Option("--resend-changed", help="Send a correction when a decision changed.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; record and send nothing.")
    ] = False,
) -> None:
    """Record staff decisions and queue result mail."""

    def body() -> None:
        from service.results import import_results

        report = import_results(build_app(), file, resend_changed=resend_changed, dry_run=dry_run)
        would = "would be: " if dry_run else ""
        queued = "would be queued" if dry_run else "queued"
        out.print(
            f"{file}: {would}new {len(report.added)}, changed {len(report.changed)}, "
            f"unchanged {len(report.unchanged)}, rejected {len(report.rejected)}; "
            f"{report.queued} result mail(s) {queued}"
            + (f"; {len(report.blank_rows)} row(s) with no 结果 yet" if report.blank_rows else "")
            + (" (dry run: nothing changed)" if dry_run else ""),
            highlight=False,
        )
        if dry_run:
            _print_refs("new", report.added)
            _print_refs("changed", report.changed)
        for line in [*report.rejected, *report.warnings]:
            out.print(f"  {line}", highlight=False, markup=False)

    run(body)


@imports_cli.command("list")
def imports_list() -> None:
    """Every import, newest first: id, state, kind, who, file and counts."""

    def body() -> None:
        from service.import_runs import import_history

        for item in import_history(build_app()):
            out.print(
                f"{item.id}  {item.status}  {item.kind}  {item.by}  {item.filename}  "
                f"added {item.added}, changed {item.changed}, withdrawn {item.withdrawn}, "
                f"rejected {item.rejected}, mail {item.queued}",
                highlight=False,
                markup=False,
            )

    run(body)


@imports_cli.command("undo")
def imports_undo(
    import_id: Annotated[int, typer.Argument(help="The import's id (intake imports list).")],
    by: Annotated[str, typer.Option("--by", help="Who undoes it, for the record.")] = "命令行",
) -> None:
    """Undo an applied import: every row it touched as before, its unsent mail withdrawn."""

    def body() -> None:
        from service.import_runs import undo_import

        undo_import(build_app(), import_id, by=by)
        out.print(
            f"import {import_id} undone: rows restored, its unsent mail withdrawn "
            "(mail already sent stays sent)",
            highlight=False,
        )

    run(body)


@app_cli.command("export")
def export_command(
    format_: Annotated[str, typer.Option("--format", help="json or xlsx.")] = "json",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to a file.")] = None,
) -> None:
    """The register: JSON to stdout (or a file), or an .xlsx workbook."""

    def body() -> None:
        from sqlmodel import Session

        from service.register import build_register
        from service.workbook import register_workbook

        if format_ not in ("json", "xlsx"):
            raise ConfigError(f"--format {format_}: use json or xlsx", key="--format")
        application = build_app()
        with Session(application.engine) as session:
            register = build_register(session, application.settings)
        if format_ == "json":
            text = json.dumps(register, ensure_ascii=False, indent=1)
            if output is None:
                sys.stdout.write(text + "\n")
            else:
                output.write_text(text + "\n", encoding="utf-8")
            return
        target = output or Path("register.xlsx")
        target.write_bytes(register_workbook(register, base_url=application.settings.web.base_url))
        err.print(f"register written to {target}")

    run(body)


@app_cli.command("status")
def status_command(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the same facts as JSON, for machines.")
    ] = False,
) -> None:
    """A summary in Chinese: counts, what needs a person, last poll, outbox."""

    def body() -> None:
        from service.status import print_status

        print_status(build_app(), out, as_json=as_json)

    run(body)


@app_cli.command("reprocess")
def reprocess_command(
    message: Annotated[
        int | None, typer.Option("--message", help="Ledger id of one message.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every message.")] = False,
) -> None:
    """Re-run parsing and pairing from the archive, without fetching or re-sending."""

    def body() -> None:
        from sqlmodel import Session

        from service.models import Message
        from service.processing import rebuild_all

        if message is None and not all_:
            raise ConfigError("say --all or --message ID", key="reprocess")
        application = build_app()
        if message is not None:
            with Session(application.engine) as session:
                if session.get(Message, message) is None:
                    raise ConfigError(f"--message {message}: no such message in the ledger")
            # Pairing depends on arrival order, so one message is re-read by rebuilding
            # everything derived, in order: the result is what a first run would give.
            err.print(f"re-reading message {message} with everything that depends on it")
        counts = rebuild_all(application)
        err.print(
            f"reprocessed: {counts.processed} processed, {counts.needs_attention} need attention"
        )
        from service.ocr_jobs import ocr_counts

        with Session(application.engine) as session:
            unread = ocr_counts(session)["queued"]
        if unread:  # scans read before are never read again: only these wait
            err.print(
                f"{unread} scan(s) never read before are queued for OCR: `intake run` or the "
                "next `intake poll` reads them and sends the receipts that wait for them"
            )
        if counts.deferred:
            err.print(
                "stopped at a message that met a passing fault (database or disk); the rest "
                "stay pending and the next poll goes on with them"
            )

    run(body)


BY = Annotated[str, typer.Option("--by", help="Who decides (recorded in the audit trail).")]


@pair_cli.command("set")
def pair_set(
    recommendation: Annotated[int, typer.Option(help="Recommendation id (see export).")],
    row: Annotated[int, typer.Option(help="Row (序号) on the form.")],
    submission: Annotated[str, typer.Option(help="申报编号 to tie the row to.")],
    by: BY = "命令行",
) -> None:
    """Tie a form row to a submission by hand."""
    run(lambda: _manual(recommendation, kind="row", row=row, submission=submission, by=by))


@pair_cli.command("clear")
def pair_clear(
    recommendation: Annotated[int, typer.Option(help="Recommendation id.")],
    row: Annotated[int, typer.Option(help="Row (序号) on the form.")],
    by: BY = "命令行",
) -> None:
    """Say by hand that a row has no online submission."""
    run(lambda: _manual(recommendation, kind="row", row=row, submission=None, by=by))


@pair_cli.command("pdf")
def pair_pdf(
    recommendation: Annotated[int, typer.Option(help="Recommendation id.")],
    attachment: Annotated[str, typer.Option(help="SHA-256 (or a unique prefix) of the PDF.")],
    by: BY = "命令行",
) -> None:
    """Place a sealed PDF on a recommendation by hand."""
    run(lambda: _manual(recommendation, kind="pdf", attachment=attachment, by=by))


def _manual(
    recommendation: int,
    *,
    kind: str,
    row: int | None = None,
    submission: str | None = None,
    attachment: str | None = None,
    by: str = "命令行",
) -> None:
    from service.manual import record_manual_decision

    text = record_manual_decision(
        build_app(),
        recommendation,
        kind=kind,
        row=row,
        submission=submission,
        attachment=attachment,
        by=by,
    )
    out.print(text, highlight=False)


@templates_cli.command("check")
def templates_check() -> None:
    """Render every template with sample data and report errors."""

    def body() -> int:
        from notifications.render import Renderer

        problems = Renderer(settings().smtp.templates).check()
        for problem in problems:
            err.print(f"[red]template:[/red] {problem}", highlight=False)
        if not problems:
            err.print("all templates render")
        return 1 if problems else 0

    raise typer.Exit(run(body))


@app_cli.command("run")
def run_command() -> None:
    """The service: poll, deliver, digest and the import watch folder until stopped
    (and the workspace too, when [web] enabled = true)."""

    def body() -> int:
        from service.scheduler import run_service

        application = build_app()
        if not application.settings.web.enabled:
            return run_service(application)
        from service.web.server import WorkspaceServer

        with WorkspaceServer(application) as server:
            application.log(f"event=workspace_listening url={server.url}")
            return run_service(application)

    raise typer.Exit(run(body))


@app_cli.command("web")
def web_command() -> None:
    """Serve the staff workspace alone (host and port from [web]) until stopped."""

    def body() -> int:
        from service.web.server import serve_forever

        return serve_forever(build_app())

    raise typer.Exit(run(body))


def _read_password(prompt: str) -> str:
    """A password from standard input: asked twice on a terminal, else the first line."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(prompt)
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passwords differ", key="password")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _accounts(action: Callable[[Any, Any], T]) -> T:
    """Run `action(session, application)` on the database and commit."""
    from sqlmodel import Session

    application = build_app()
    with Session(application.engine, expire_on_commit=False) as session:
        result = action(session, application)
        session.commit()
    return result


@staff_cli.command("add")
def staff_add(
    username: Annotated[str, typer.Argument(help="User name to sign in with.")],
    name: Annotated[str, typer.Option("--name", help="显示名 shown in the workspace.")] = "",
    role: Annotated[str, typer.Option("--role", help="staff (decides) or viewer.")] = "staff",
) -> None:
    """Create an account; the password is read from standard input (never from argv)."""

    def body() -> None:
        from service.accounts import add_user

        password = _read_password(f"password for {username}: ")
        _accounts(
            lambda session, application: add_user(
                session, username, password, display_name=name, role=role, now=application.clock()
            )
        )
        err.print(f"staff account {username} ({role}) created")

    run(body)


@staff_cli.command("list")
def staff_list() -> None:
    """Every account: user name, name, role, state, live tokens."""

    def body() -> None:
        from service.accounts import list_users

        for user, tokens in _accounts(lambda session, _app: list_users(session)):
            state = "disabled" if user.disabled else "active"
            sys.stdout.write(
                f"{user.username}\t{user.display_name}\t{user.role}\t{state}\ttokens={tokens}\n"
            )

    run(body)


@staff_cli.command("disable")
def staff_disable(username: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Disable an account: its sessions and tokens stop working at once."""

    def body() -> None:
        from service.accounts import disable_user

        _accounts(lambda session, app_: disable_user(session, username, now=app_.clock()))
        err.print(f"staff account {username} disabled")

    run(body)


@staff_cli.command("password")
def staff_password(username: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Set a new password (from standard input); open sessions must sign in again."""

    def body() -> None:
        from service.accounts import set_password

        password = _read_password(f"new password for {username}: ")
        _accounts(lambda session, app_: set_password(session, username, password, now=app_.clock()))
        err.print(f"password of {username} changed")

    run(body)


@staff_cli.command("token")
def staff_token(
    username: Annotated[str, typer.Argument(help="User name.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Revoke all of its tokens.")] = False,
) -> None:
    """Print one new bearer token for scripts (stored hashed), or revoke them all."""

    def body() -> None:
        from service.accounts import new_token, revoke_tokens

        if revoke:
            count = _accounts(
                lambda session, app_: revoke_tokens(session, username, now=app_.clock())
            )
            err.print(f"{count} token(s) of {username} revoked")
            return
        token = _accounts(lambda session, app_: new_token(session, username, now=app_.clock()))
        sys.stdout.write(token + "\n")

    run(body)


@app_cli.command("health")
def health_command() -> None:
    """Exit 0 when the service is healthy, 1 when not (for the Docker HEALTHCHECK)."""

    def body() -> int:
        from service.health import check_health

        healthy, lines = check_health(build_app())
        for line in lines:
            out.print(line, highlight=False)
        return 0 if healthy else 1

    raise typer.Exit(run(body))


@app_cli.command("init")
def init_command(
    *,
    output: Annotated[Path, typer.Option("-o", "--output", help="The file to write.")] = Path(
        "intake.toml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Log in to both servers before saving.")
    ] = True,
    campaign_name: Annotated[str | None, typer.Option(help="The campaign's name.")] = None,
    deadline: Annotated[
        str | None, typer.Option(help="e.g. 2025-07-31T23:59:59+08:00 (mail after it is late).")
    ] = None,
    starts: Annotated[
        str | None, typer.Option(help="Mail received before this gets no automatic reply.")
    ] = None,
    timezone: Annotated[str, typer.Option(help="The campaign's time zone.")] = "Asia/Shanghai",
    staff: Annotated[
        list[str] | None, typer.Option(help="A digest address (repeat the option for more).")
    ] = None,
    database_url: Annotated[
        str, typer.Option(help="SQLite or postgresql+psycopg://…")
    ] = "sqlite:///var/intake.db",
    imap_host: Annotated[str | None, typer.Option(help="IMAP server.")] = None,
    imap_port: Annotated[int | None, typer.Option(help="[default: by security]")] = None,
    imap_security: Annotated[str, typer.Option(help="ssl, starttls or plain.")] = "ssl",
    imap_username: Annotated[str | None, typer.Option(help="IMAP login.")] = None,
    imap_password_file: Annotated[
        Path | None, typer.Option(help="A file holding the IMAP password.")
    ] = None,
    imap_ca_file: Annotated[
        Path | None, typer.Option(help="Trust this CA (a private or self-signed server).")
    ] = None,
    imap_folder: Annotated[str, typer.Option(help="The folder to poll.")] = "INBOX",
    imap_after: Annotated[
        str, typer.Option(help="move:<folder>, flag, seen or none.")
    ] = "move:Processed",
    smtp_host: Annotated[str | None, typer.Option(help="SMTP server.")] = None,
    smtp_port: Annotated[int | None, typer.Option(help="[default: by security]")] = None,
    smtp_security: Annotated[str, typer.Option(help="ssl, starttls or plain.")] = "ssl",
    smtp_username: Annotated[str | None, typer.Option(help="SMTP login (none: no login).")] = None,
    smtp_password_file: Annotated[
        Path | None, typer.Option(help="A file holding the SMTP password.")
    ] = None,
    smtp_ca_file: Annotated[
        Path | None, typer.Option(help="Trust this CA (a private or self-signed server).")
    ] = None,
    from_address: Annotated[
        str | None, typer.Option(help="From of every mail, e.g. '案例征集 <cases@example.org>'.")
    ] = None,
) -> None:
    """Write a commented intake.toml for a real deployment, after checking both logins.

    On a terminal it asks for what the flags did not give; otherwise every required flag
    must be given. Passwords are read from files (or typed on the terminal).
    """

    def body() -> int:
        from service.configfile import (
            InitAnswers,
            check_servers,
            missing_answers,
            render_config,
            settings_from,
            write_config,
        )

        if output.exists() and not force:
            raise ConfigError(f"{output} exists: not replaced (use --force to replace it)")
        answers = InitAnswers(
            campaign_name=campaign_name,
            deadline=deadline,
            starts=starts,
            timezone=timezone,
            staff=list(staff or []),
            database_url=database_url,
            imap_host=imap_host,
            imap_port=imap_port,
            imap_security=imap_security,
            imap_username=imap_username,
            imap_password_file=imap_password_file,
            imap_ca_file=imap_ca_file,
            imap_folder=imap_folder,
            imap_after=imap_after,
            smtp_host=smtp_host,
            smtp_port=smtp_port,
            smtp_security=smtp_security,
            smtp_username=smtp_username,
            smtp_password_file=smtp_password_file,
            smtp_ca_file=smtp_ca_file,
            from_address=from_address,
        )
        if sys.stdin.isatty():
            _ask(answers)
        missing = missing_answers(answers)
        if missing:
            raise ConfigError(f"intake init needs {', '.join(missing)}", key=missing[0])
        chosen = settings_from(answers)
        if check:
            problems = check_servers(chosen)
            for problem in problems:
                err.print(f"[red]{problem}[/red]", highlight=False)
            if problems:
                err.print(f"{output} not written: fix the above, or use --no-check")
                return 1
            err.print("IMAP and SMTP logins work")
        write_config(output, render_config(answers), force=force)
        err.print(f"wrote {output}; next: intake db upgrade, then intake poll --once")
        return 0

    raise typer.Exit(run(body))


def _ask(answers: Any) -> None:
    """Ask on the terminal for what the flags did not give (passwords hidden)."""
    prompts = [
        ("campaign_name", "Campaign name"),
        ("deadline", "Deadline (e.g. 2025-07-31T23:59:59+08:00)"),
        ("imap_host", "IMAP server"),
        ("imap_username", "IMAP username"),
        ("smtp_host", "SMTP server"),
        ("smtp_username", "SMTP username (empty: no login)"),
        ("from_address", "From address (e.g. 案例征集 <cases@example.org>)"),
    ]
    for name, label in prompts:
        if getattr(answers, name) is None:
            default = answers.imap_username if name == "smtp_username" else None
            setattr(answers, name, typer.prompt(label, default=default or "") or None)
    if not answers.staff:
        typed = typer.prompt("Staff addresses for the digest (comma-separated)")
        answers.staff = [part.strip() for part in typed.split(",") if part.strip()]
    if answers.imap_password_file is None:
        answers.imap_password = typer.prompt("IMAP password", hide_input=True)
    if answers.smtp_username and answers.smtp_password_file is None:
        answers.smtp_password = typer.prompt("SMTP password", hide_input=True)


@app_cli.command("demo")
def demo_command(
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Where the demo keeps its database and mail [default: var, where the built-in "
            "configuration reads].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the whole flow on the bundled sample mailbox, SQLite and the file transport."""

    def body() -> None:
        from config.settings import config_path
        from service.demo import DEFAULT_WORKDIR, run_demo

        run_demo(workdir or DEFAULT_WORKDIR, out, err, config_in_effect=config_path(State.config))

    run(body)


def main() -> None:
    """Console-script entry point."""
    app_cli()
