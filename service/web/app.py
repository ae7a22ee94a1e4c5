"""The workspace as an ASGI application (Starlette): routes, sign-in, pages and the JSON API.

`create_app(app)` is the only entry point; `service.web.server` runs it under uvicorn.
Pages need a session cookie (else a redirect to /login); /api needs a session or a bearer
token (else 401 JSON); /healthz, /login and /static are open.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.errors import IntakeError
from parsers.mail import parse_message
from parsers.model import Problem
from service import accounts, decisions, import_runs
from service.accounts import Staff
from service.agreement import stored_reading
from service.bootstrap import App
from service.imports import KIND_LABELS as IMPORT_KINDS
from service.imports import ImportReport
from service.models import Attachment, CaseRow, Outbox, Recommendation
from service.models import Message as MailMessage
from service.ocr_jobs import ocr_counts
from service.seals import STAFF_SEAL_LABELS, staff_seals
from service.todo import ACTION_LABELS, KIND_LABELS, todo_items, todo_json
from service.web import charts, pdfpages, queries, texts
from service.web.security import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SECURITY_HEADERS,
    SESSION_COOKIE,
    Sessions,
    download_headers,
    session_secret,
    sniff_type,
    tokens_equal,
)

STATIC = Path(__file__).resolve().parent / "static"
NAVIGATION = (
    ("/", "总览"),
    ("/todo", "待处理"),
    ("/units", "推荐单位"),
    ("/submissions", "在线申报"),
    ("/messages", "来信"),
    ("/outbox", "发出邮件"),
    ("/imports", "导入"),
    ("/audit", "操作记录"),
    ("/status", "运行状态"),
)
LOGIN_FAILED = "用户名或密码不正确，请重新输入。"
LOGIN_BLOCKED = "登录尝试次数过多，请一分钟后再试。"
FORM_EXPIRED = "页面已过期，请返回刷新后重试。"
_TAG = re.compile(r"<[^>]*>")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")

Handler = Callable[[Request, Staff], Response]


class SecurityHeaders:
    """Adds the security headers to every response (CSP, nosniff, no framing, referrer)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not scope["path"].startswith("/static/"):
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Workspace:
    """The routes and what they share: the application, sessions, templates, the register."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.settings = app.settings
        self.zone = app.settings.campaign.zone
        self.sessions = Sessions(session_secret(app.settings))
        self.register = queries.RegisterCache(app)
        self.templates = Environment(
            loader=PackageLoader("service.web", "templates"), autoescape=True
        )
        self.templates.globals.update(
            navigation=NAVIGATION,
            campaign=app.settings.campaign.name,
            csrf_field=CSRF_FIELD,
            texts=texts,
        )
        self.templates.filters["when"] = lambda moment: texts.when(moment, self.zone)
        self.templates.filters["score"] = lambda value: f"{float(value or 0):.0f}"
        self.templates.filters["problem"] = problem_text
        self.secure_cookies = (app.settings.web.base_url or "").startswith("https://")

    # -- who is asking ----------------------------------------------------------------------

    def staff_of(self, request: Request) -> Staff | None:
        """The signed-in person: a bearer token, else a valid session cookie."""
        authorization = request.headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            with Session(self.app.engine) as session:
                return accounts.staff_for_token(session, authorization[7:].strip())
        data = self.sessions.read(request.cookies.get(SESSION_COOKIE), now=self.app.clock())
        if data is None:
            return None
        with Session(self.app.engine) as session:
            staff = accounts.staff_for_session(session, data.user_id, data.signed_in_at)
        if staff is not None:
            request.state.csrf = data.csrf
        return staff

    def page(self, handler: Handler) -> Callable[[Request], Response]:
        """A page for signed-in staff; anonymous visitors are sent to /login."""

        def endpoint(request: Request) -> Response:
            staff = self.staff_of(request)
            if staff is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
            return handler(request, staff)

        return endpoint

    def api(self, handler: Handler) -> Callable[[Request], Response]:
        """An API call: a session or `Authorization: Bearer TOKEN`, else 401 JSON."""

        def endpoint(request: Request) -> Response:
            staff = self.staff_of(request)
            if staff is None:
                return JSONResponse(
                    {"error": "unauthorized", "message": "请先登录，或提供有效的访问令牌。"},
                    status_code=401,
                    headers={"www-authenticate": 'Bearer realm="intake"'},
                )
            return handler(request, staff)

        return endpoint

    def render(
        self,
        request: Request,
        template: str,
        staff: Staff | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A page from its template, with the navigation and the CSRF token."""
        html = self.templates.get_template(template).render(
            request=request,
            staff=staff,
            role=texts.label(texts.ROLE, staff.role) if staff else "",
            csrf=getattr(request.state, "csrf", ""),
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    # -- sign in and out --------------------------------------------------------------------

    def login_form(self, request: Request, *, error: str = "", status_code: int = 200) -> Response:
        """The sign-in page; its CSRF token lives in a signed cookie until sign-in."""
        token, new_cookie = self.sessions.login_form_token(request.cookies.get(LOGIN_COOKIE))
        request.state.csrf = token
        response = self.render(
            request,
            "login.html",
            None,
            status_code=status_code,
            error=error,
            next=_local_path(request.query_params.get("next")),
        )
        if new_cookie:
            response.set_cookie(
                LOGIN_COOKIE,
                new_cookie,
                httponly=True,
                samesite="lax",
                secure=self.secure_cookies,
                path="/login",
            )
        return response

    async def login(self, request: Request) -> Response:
        """GET: the form. POST: check the CSRF token, the limit and the password."""
        if request.method == "GET":
            return await run_in_threadpool(self.login_form, request)
        form = await request.form()
        expected, _ = self.sessions.login_form_token(request.cookies.get(LOGIN_COOKIE))
        if not request.cookies.get(LOGIN_COOKIE) or not tokens_equal(
            form.get(CSRF_FIELD), expected
        ):
            return self.forbidden(request)
        username = str(form.get("username") or "")
        password = str(form.get("password") or "")
        address = request.client.host if request.client else "unknown"
        return await run_in_threadpool(self._sign_in, request, username, password, address)

    def _sign_in(self, request: Request, username: str, password: str, address: str) -> Response:
        now = self.app.clock()
        with Session(self.app.engine) as session:
            blocked = accounts.login_blocked(session, username.strip(), address, now=now)
            staff = accounts.attempt_login(session, username, password, address, now=now)
            session.commit()
        if staff is None:
            self.app.log(f"event=login_refused user={username[:100]!r} address={address}")
            if blocked:
                return self.login_form(request, error=LOGIN_BLOCKED, status_code=429)
            return self.login_form(request, error=LOGIN_FAILED, status_code=401)
        self.app.log(f"event=login user={staff.username!r} address={address}")
        hours = self.settings.web.session_hours
        value, _ = self.sessions.make(staff.id, now=now, expires_at=now + timedelta(hours=hours))
        target = _local_path(request.query_params.get("next")) or "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=int(hours * 3600),
            httponly=True,
            samesite="lax",
            secure=self.secure_cookies,
            path="/",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: Request) -> Response:
        """POST with the session's CSRF token: forget the session cookie."""
        form = await request.form()
        staff = await run_in_threadpool(self.staff_of, request)
        if staff is None:
            return RedirectResponse("/login", status_code=303)
        if not tokens_equal(form.get(CSRF_FIELD), request.state.csrf):
            return self.forbidden(request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def forbidden(self, request: Request) -> Response:
        """403 for a form without its CSRF token."""
        return self.render(
            request, "error.html", None, status_code=403, title="无法提交", text=FORM_EXPIRED
        )

    # -- pages ------------------------------------------------------------------------------

    def overview(self, request: Request, staff: Staff) -> Response:
        """总览: counts, days to the deadline, progress per unit, arrivals per day, waiting."""
        facts = self.register.derived("overview", overview_facts)
        waiting = self.todo_list()
        deadline = self.settings.campaign.deadline
        return self.render(
            request,
            "overview.html",
            staff,
            deadline=texts.when(deadline, self.zone),
            days_left=queries.days_left(deadline, self.app.clock(), self.zone),
            waiting=waiting[:20],
            waiting_total=len(waiting),
            **facts,
        )

    def todo_list(self) -> list[Any]:
        """The queue of what needs a person, computed once per version of the register."""
        return self.register.derived("todo", todo_items)

    def todo(
        self, request: Request, staff: Staff, *, error: str = "", status_code: int = 200
    ) -> Response:
        """待处理: everything that needs a person, each with its actions as small forms."""
        register = self.register.get()
        done = None
        done_id = request.query_params.get("done", "")
        if done_id.isdigit():
            done = next(
                (entry for entry in register["decisions"] if entry["id"] == int(done_id)), None
            )
        searched_for = request.query_params.get("for", "")
        search = request.query_params.get("q", "").strip()[:200]
        found = (
            queries.submissions_page(register, number=1, search=search).rows
            if searched_for and search
            else []
        )
        return self.render(
            request,
            "todo.html",
            staff,
            status_code=status_code,
            items=self.todo_list(),
            can_decide=staff.can_decide,
            done=audit_entry(done, self.zone) if done else None,
            error=error,
            mailtos=self.register.derived("mailtos", reply_links),
            searched_for=searched_for,
            search=search,
            found=found,
        )

    async def _decision_form(
        self, request: Request, *, back: str
    ) -> tuple[FormData, Staff] | Response:
        """The posted form and its staff member when they may decide; else the answer to give
        (sign in, a CSRF failure, or read-only for a viewer)."""
        form = await request.form()
        staff = await run_in_threadpool(self.staff_of, request)
        if staff is None:
            return RedirectResponse(f"/login?next={back}", status_code=303)
        if not tokens_equal(form.get(CSRF_FIELD), getattr(request.state, "csrf", "")):
            return self.forbidden(request)
        if not staff.can_decide:
            return self.render(
                request, "error.html", staff, status_code=403, title="无法提交", text=READ_ONLY
            )
        return form, staff

    async def todo_decide(self, request: Request) -> Response:
        """POST from 待处理: one action on one item (CSRF checked), then back to the list."""
        checked = await self._decision_form(request, back="/todo")
        if isinstance(checked, Response):
            return checked
        form, staff = checked
        item_id = request.path_params["item_id"]
        params = {
            key: str(value) for key, value in form.items() if key not in (CSRF_FIELD, "action")
        }
        try:
            state = await run_in_threadpool(
                decisions.decide,
                self.app,
                item_id,
                str(form.get("action") or ""),
                params,
                by=who(staff),
            )
        except decisions.DecisionRefusedError as refused:
            return await run_in_threadpool(
                partial(self.todo, error=refused.text, status_code=refused.status),
                request,
                staff,
            )
        last = state["decisions"][-1]["id"]
        return RedirectResponse(f"/todo?done={last}", status_code=303)

    async def api_decide(self, request: Request) -> Response:
        """`POST /api/todo/{id}` with `{"action": NAME, ...params}`: the item's new state."""
        staff = await run_in_threadpool(self.staff_of, request)
        if staff is None:
            return JSONResponse(
                {"error": "unauthorized", "message": "请先登录，或提供有效的访问令牌。"},
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="intake"'},
            )
        if not staff.can_decide:
            return JSONResponse({"error": "forbidden", "message": READ_ONLY}, status_code=403)
        if not request.headers.get("content-type", "").startswith("application/json"):
            # a form posted from another site cannot send JSON: this keeps cookies safe
            return JSONResponse({"error": "invalid", "message": NOT_JSON}, status_code=415)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            return JSONResponse({"error": "invalid", "message": NOT_JSON}, status_code=422)
        params = {key: value for key, value in body.items() if key != "action"}
        try:
            state = await run_in_threadpool(
                decisions.decide,
                self.app,
                request.path_params["item_id"],
                body["action"],
                params,
                by=who(staff),
            )
        except decisions.DecisionRefusedError as refused:
            error = "conflict" if refused.status == 409 else "invalid"
            return JSONResponse({"error": error, "message": refused.text}, refused.status)
        return JSONResponse(state)

    def units(self, request: Request, staff: Staff) -> Response:
        """推荐单位: every unit's current form, incomplete first."""
        rows = self.register.derived("units", queries.unit_rows)
        number = queries.page_number(request.query_params.get("page"))
        start = (number - 1) * queries.PAGE_SIZE
        page = queries.Page(
            rows=rows[start : start + queries.PAGE_SIZE], number=number, total=len(rows)
        )
        return self.render(request, "units.html", staff, page=page, query=_query(request))

    def unit(self, request: Request, staff: Staff) -> Response:
        """One recommendation: versions, files, the PDF's pages, seal check, rows and matches."""
        recommendation_id = int(request.path_params["recommendation_id"])
        with Session(self.app.engine) as session:
            recommendation = session.get(Recommendation, recommendation_id)
            if recommendation is None:
                raise HTTPException(404)
            versions = queries.unit_versions(session, recommendation.unit_key)
            rows = queries.case_rows(session, recommendation_id)
            refs = {str(row.submission_ref) for row in rows if row.submission_ref}
            for row in rows:
                refs.update(str(candidate[0]) for candidate in row.candidates if candidate)
            found = queries.submissions_by_ref(session, refs)
            word = _attachment(session, recommendation.word_attachment_id)
            pdf = _attachment(session, recommendation.pdf_attachment_id)
            seal_confirmed = staff_seals(session).get(pdf.sha256) if pdf else None
            arrivals = {
                name: message.received_at
                for name, attachment in (("word", word), ("pdf", pdf))
                if attachment and (message := session.get(MailMessage, attachment.message_pk))
            }
            reading = (
                stored_reading(session, pdf.sha256)
                if pdf is not None and pdf.text_source == "ocr"
                else None
            )
        pages = pdfpages.page_count(self.app.archive, pdf.sha256) if pdf else 0
        return self.render(
            request,
            "unit.html",
            staff,
            recommendation=recommendation,
            versions=versions,
            rows=rows,
            submissions=found,
            word=word,
            pdf=pdf,
            seal_confirmed=seal_confirmed,
            staff_seal_labels=STAFF_SEAL_LABELS,
            arrivals=arrivals,
            pages=range(1, pages + 1),
            page_texts=self._page_texts(pdf, reading.page_texts if reading else None),
        )

    def _page_texts(self, pdf: Attachment | None, read: list[str] | None) -> dict[int, str]:
        """The text of each page of the PDF by page number: what OCR read on a scan, or its
        text layer."""
        if pdf is None or pdf.text_source == "none":
            return {}
        if pdf.text_source == "ocr":
            texts = read if read is not None else pdf.pdf_text.split("\n\n")
        else:
            texts = pdfpages.page_texts(self.app.archive, pdf.sha256)
        return {number: text for number, text in enumerate(texts, start=1) if text.strip()}

    def unit_page_image(self, request: Request, staff: Staff) -> Response:
        """One page of a recommendation's sealed PDF as PNG."""
        recommendation_id = int(request.path_params["recommendation_id"])
        number = int(request.path_params["page"])
        with Session(self.app.engine) as session:
            recommendation = session.get(Recommendation, recommendation_id)
            pdf = _attachment(session, recommendation.pdf_attachment_id if recommendation else None)
        if pdf is None:
            raise HTTPException(404)
        try:
            data = pdfpages.page_png(self.app.archive, pdf.sha256, number)
        except IntakeError as exc:
            raise HTTPException(404) from exc
        return Response(data, media_type="image/png", headers={"cache-control": "private"})

    def submissions(self, request: Request, staff: Staff) -> Response:
        """在线申报: filter by status, unit and route; search 申报编号, title or applicant."""
        register = self.register.get()
        params = request.query_params
        page = queries.submissions_page(
            register,
            number=queries.page_number(params.get("page")),
            status=params.get("status", ""),
            unit=params.get("unit", ""),
            route=params.get("route", ""),
            search=params.get("q", ""),
        )
        return self.render(
            request,
            "submissions.html",
            staff,
            page=page,
            units=self.register.derived("recommenders", queries.recommenders),
            status=params.get("status", ""),
            unit=params.get("unit", ""),
            route=params.get("route", ""),
            search=params.get("q", ""),
            query=_query(request),
        )

    def submission(self, request: Request, staff: Staff) -> Response:
        """One online submission: its fields, state and the form rows that name it."""
        ref = request.path_params["ref"]
        register = self.register.get()
        found = next((row for row in register["submissions"] if row["ref"] == ref), None)
        if found is None:
            raise HTTPException(404)
        with Session(self.app.engine) as session:
            rows = session.exec(
                select(CaseRow, Recommendation)
                .join(Recommendation, col(Recommendation.id) == col(CaseRow.recommendation_id))
                .where(CaseRow.submission_ref == ref)
            ).all()
        return self.render(request, "submission.html", staff, submission=found, rows=rows)

    def messages(self, request: Request, staff: Staff) -> Response:
        """来信: every message, newest first, filtered and searched."""
        params = request.query_params
        with Session(self.app.engine) as session:
            page = queries.messages_page(
                session,
                number=queries.page_number(params.get("page")),
                kind=params.get("kind", ""),
                status=params.get("status", ""),
                search=params.get("q", "").strip(),
            )
        return self.render(
            request,
            "messages.html",
            staff,
            page=page,
            kind=params.get("kind", ""),
            status=params.get("status", ""),
            search=params.get("q", ""),
            query=_query(request),
        )

    def message(self, request: Request, staff: Staff) -> Response:
        """One message: sender, subject, arrival, kind, problems, text body, attachments."""
        message_pk = int(request.path_params["message_id"])
        with Session(self.app.engine) as session:
            message = session.get(MailMessage, message_pk)
            if message is None:
                raise HTTPException(404)
            attachments = queries.message_attachments(session, message_pk)
        body = self._body_of(message)
        waiting = [
            item for item in self.todo_list() if item.details.get("message_id") == message_pk
        ]
        key = message.sha256[:16] or str(message_pk)
        targets = {f"{kind}:{key}" for kind in ("late", "needs_attention", "needs_reply")}
        decided = [
            audit_entry(entry, self.zone)
            for entry in self.register.get()["decisions"]
            if entry["target"] in targets
        ]
        return self.render(
            request,
            "message.html",
            staff,
            message=message,
            attachments=attachments,
            body=body,
            problems=[problem_text(item) for item in message.problems],
            waiting=waiting,
            decided=decided,
        )

    def _body_of(self, message: MailMessage) -> str | None:
        """The message's text body from the archive (None when it was not downloaded)."""
        if not message.downloaded:
            return None
        try:
            parsed = parse_message(self.app.archive.get(message.sha256))
        except IntakeError:
            return ""
        if parsed.text.strip():
            return parsed.text.strip()
        text = unescape(_TAG.sub("\n", re.sub(r"(?is)<(script|style).*?</\1>", "", parsed.html)))
        return _BLANK_LINES.sub("\n\n", text).strip()

    def attachment(self, request: Request, staff: Staff) -> Response:
        """Download one attachment: as a file with a safe name (inline: PDF and images)."""
        message_pk = int(request.path_params["message_id"])
        attachment_id = int(request.path_params["attachment_id"])
        with Session(self.app.engine) as session:
            found = session.get(Attachment, attachment_id)
        if found is None or found.message_pk != message_pk:
            raise HTTPException(404)
        try:
            data = self.app.archive.get(found.sha256)
        except IntakeError as exc:
            raise HTTPException(404) from exc
        return Response(data, headers=download_headers(found.filename, sniff_type(data)))

    def outbox(self, request: Request, staff: Staff) -> Response:
        """发出邮件: status, attempts and the last error in words."""
        params = request.query_params
        with Session(self.app.engine) as session:
            page = queries.outbox_page(
                session,
                number=queries.page_number(params.get("page")),
                status=params.get("status", ""),
                kind=params.get("kind", ""),
            )
            counts = queries.outbox_counts(session)
        return self.render(
            request,
            "outbox.html",
            staff,
            page=page,
            counts=counts,
            status=params.get("status", ""),
            kind=params.get("kind", ""),
            query=_query(request),
        )

    def outbox_item(self, request: Request, staff: Staff) -> Response:
        """One outgoing mail: recipients, state, the text it says."""
        with Session(self.app.engine) as session:
            mail = session.get(Outbox, int(request.path_params["outbox_id"]))
        if mail is None:
            raise HTTPException(404)
        return self.render(request, "outbox_item.html", staff, mail=mail)

    def audit(
        self, request: Request, staff: Staff, *, error: str = "", status_code: int = 200
    ) -> Response:
        """操作记录: who decided what and when, newest first, each with its undo."""
        entries = [
            audit_entry(entry, self.zone) for entry in reversed(self.register.get()["decisions"])
        ]
        undone_id = request.query_params.get("undone", "")
        undone = next((entry for entry in entries if str(entry["id"]) == undone_id), None)
        return self.render(
            request,
            "audit.html",
            staff,
            status_code=status_code,
            entries=entries,
            imports=list(reversed(self.register.get()["imports"])),
            import_kinds=IMPORT_KINDS,
            undone=undone,
            error=error,
            can_decide=staff.can_decide,
        )

    async def audit_undo(self, request: Request) -> Response:
        """POST from 操作记录: undo one decision (CSRF checked)."""
        checked = await self._decision_form(request, back="/audit")
        if isinstance(checked, Response):
            return checked
        _, staff = checked
        decision_id = int(request.path_params["decision_id"])
        try:
            await run_in_threadpool(decisions.undo, self.app, decision_id, by=who(staff))
        except decisions.DecisionRefusedError as refused:
            return await run_in_threadpool(
                partial(self.audit, error=refused.text, status_code=refused.status),
                request,
                staff,
            )
        return RedirectResponse(f"/audit?undone={decision_id}", status_code=303)

    # -- imports ----------------------------------------------------------------------------

    def imports(
        self,
        request: Request,
        staff: Staff,
        *,
        error: str = "",
        notice: str = "",
        status_code: int = 200,
    ) -> Response:
        """导入: upload an export or a results sheet to preview it; every import, with undo."""
        return self.render(
            request,
            "imports.html",
            staff,
            status_code=status_code,
            runs=import_runs.import_history(self.app),
            notice=notice,
            error=error,
            kinds=IMPORT_KINDS,
            states=IMPORT_STATE,
            can_decide=staff.can_decide,
            limit_mb=MAX_UPLOAD_BYTES // (1024 * 1024),
        )

    async def import_upload(self, request: Request) -> Response:
        """POST 导入 (multipart, capped at MAX_UPLOAD_BYTES): keep the file, show its preview."""
        staff = await run_in_threadpool(self.staff_of, request)
        if staff is None:
            return RedirectResponse("/login?next=/imports", status_code=303)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + 64 * 1024:
            return await self._import_refused(request, staff, import_runs.TOO_LARGE, 413)
        body = await _body_up_to(request, MAX_UPLOAD_BYTES + 64 * 1024)
        if body is None:
            return await self._import_refused(request, staff, import_runs.TOO_LARGE, 413)
        try:
            form = await _replayed(request, body).form(max_files=1, max_fields=10)
        except HTTPException:
            return await self._import_refused(request, staff, import_runs.UNREADABLE, 400)
        try:
            upload = form.get("file")
            data = b"" if isinstance(upload, str) or upload is None else await upload.read()
            filename = "" if isinstance(upload, str) or upload is None else upload.filename or ""
        finally:
            await form.close()
        if not tokens_equal(form.get(CSRF_FIELD), getattr(request.state, "csrf", "")):
            return self.forbidden(request)
        if not staff.can_decide:
            return self.render(
                request, "error.html", staff, status_code=403, title="无法提交", text=READ_ONLY
            )
        if not filename:
            return await self._import_refused(request, staff, import_runs.NO_FILE, 422)
        if len(data) > MAX_UPLOAD_BYTES:
            return await self._import_refused(request, staff, import_runs.TOO_LARGE, 413)
        kind = str(form.get("kind") or "")
        options = (
            {"complete": form.get("complete") == "1"}
            if kind == "submissions"
            else {"resend_changed": form.get("resend_changed") == "1"}
        )
        try:
            run_id = await run_in_threadpool(
                partial(import_runs.preview_import, options=options, by=who(staff)),
                self.app,
                kind,
                data,
                filename,
            )
        except import_runs.ImportRefusedError as refused:
            return await self._import_refused(request, staff, refused.text, refused.status)
        return RedirectResponse(f"/imports/{run_id}", status_code=303)

    async def _import_refused(
        self, request: Request, staff: Staff, text: str, status_code: int
    ) -> Response:
        limit = MAX_UPLOAD_BYTES // (1024 * 1024)
        return await run_in_threadpool(
            partial(self.imports, error=text.format(limit=limit), status_code=status_code),
            request,
            staff,
        )

    def import_page(
        self, request: Request, staff: Staff, *, error: str = "", status_code: int = 200
    ) -> Response:
        """One import: its preview (while not confirmed, against the data as it is now), or
        what it did."""
        try:
            run, plan = import_runs.current_plan(self.app, int(request.path_params["run_id"]))
        except import_runs.ImportRefusedError as refused:
            raise HTTPException(404) from refused
        preview = import_view(plan, self.app, self.zone) if plan is not None else None
        return self.render(
            request,
            "import_preview.html",
            staff,
            status_code=status_code,
            run=run,
            plan=plan,
            preview=preview,
            kind_label=texts.label(IMPORT_KINDS, run.kind),
            state_label=texts.label(IMPORT_STATE, run.status),
            error=error,
            can_decide=staff.can_decide,
            confirmed=request.query_params.get("confirmed") == "1",
        )

    async def import_action(self, request: Request) -> Response:
        """POST 确认导入 / 放弃 / 撤销 on one import (CSRF checked, staff only)."""
        run_id = int(request.path_params["run_id"])
        checked = await self._decision_form(request, back=f"/imports/{run_id}")
        if isinstance(checked, Response):
            return checked
        form, staff = checked
        action = request.path_params["action"]
        if action not in ("confirm", "discard", "undo"):
            raise HTTPException(404)
        try:
            if action == "confirm":
                await run_in_threadpool(
                    partial(
                        import_runs.confirm_import,
                        fingerprint=str(form.get("fingerprint") or ""),
                        withdrawals_checked=form.get("withdrawals_checked") == "1",
                        by=who(staff),
                    ),
                    self.app,
                    run_id,
                )
                return RedirectResponse(f"/imports/{run_id}?confirmed=1", status_code=303)
            if action == "discard":
                await run_in_threadpool(
                    partial(import_runs.discard_import, by=who(staff)), self.app, run_id
                )
                return RedirectResponse("/imports", status_code=303)
            said = await run_in_threadpool(
                partial(import_runs.undo_import, by=who(staff)), self.app, run_id
            )
        except import_runs.ImportRefusedError as refused:
            return await run_in_threadpool(
                partial(self.import_page, error=refused.text, status_code=refused.status),
                request,
                staff,
            )
        return await run_in_threadpool(partial(self.imports, notice=said), request, staff)

    def status(self, request: Request, staff: Staff) -> Response:
        """运行状态: last poll per mailbox, mailbox errors, outbox counts, recent imports."""
        with Session(self.app.engine) as session:
            cursors = queries.cursors(session)
            counts = queries.outbox_counts(session)
            imports = queries.recent_imports(session)
            scans = ocr_counts(session)
        return self.render(
            request,
            "status.html",
            staff,
            cursors=cursors,
            counts=counts,
            imports=imports,
            scans=scans,
            ocr_enabled=self.app.settings.ocr.enabled,
        )

    # -- open and API -----------------------------------------------------------------------

    def healthz(self, request: Request) -> Response:
        """Open to anyone: 200 when the database answers, 503 when not."""
        try:
            with Session(self.app.engine) as session:
                session.exec(select(1)).one()
        except Exception:  # any database failure means "not healthy"
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    def api_register(self, request: Request, staff: Staff) -> Response:
        """Exactly what `intake export --format json` prints."""
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(
                self.register.derived("export.gz", lambda _: gzip.compress(self._export(), 6)),
                media_type="application/json",
                headers={"content-encoding": "gzip", "vary": "accept-encoding"},
            )
        return Response(self._export(), media_type="application/json")

    def _export(self) -> bytes:
        return self.register.derived(
            "export",
            lambda register: (json.dumps(register, ensure_ascii=False, indent=1) + "\n").encode(),
        )

    def api_todo(self, request: Request, staff: Staff) -> Response:
        """`{"items": [...]}`: everything that needs a person."""
        items = self.register.derived("todo.json", todo_json_items)
        return JSONResponse({"items": items})

    async def not_found(self, request: Request, exc: Exception) -> Response:
        """404 in Chinese (JSON under /api)."""
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "not_found", "message": "没有这一项。"}, 404)
        return self.render(
            request, "error.html", None, status_code=404, title="找不到页面", text=NOT_FOUND
        )


def overview_facts(register: dict[str, Any]) -> dict[str, Any]:
    """What 总览 shows that depends on the register alone: counts and both charts."""
    current = [row for row in register["recommendations"] if row["current"]]
    progress = [
        charts.UnitProgress(
            unit=row["unit"],
            link=f"/units/{row['id']}",
            word=row["word"] is not None,
            pdf=row["pdf"] is not None,
            rows=len(row["cases"]),
            matched=sum(1 for case in row["cases"] if case["match"] in ("ref", "name", "manual")),
        )
        for row in sorted(current, key=lambda row: (row["complete"], row["unit"]))
    ]
    days = Counter(str(message["received_at"])[:10] for message in register["messages"])
    return {
        "messages": len(register["messages"]),
        "needs_attention": sum(
            1 for row in register["messages"] if row["status"] == "needs_attention"
        ),
        "units": len(current),
        "complete_units": sum(1 for row in current if row["complete"]),
        "submissions": Counter(str(row["status"]) for row in register["submissions"]),
        "submissions_total": len(register["submissions"]),
        "outbox": Counter(str(row["status"]) for row in register["outbox"]),
        "progress_chart": charts.progress_chart(progress),
        "arrivals_chart": charts.arrivals_chart(sorted(days.items())),
    }


MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""The largest file the 导入 page takes (an export of thousands of rows is well under 1 MB)."""
IMPORT_STATE = {
    "previewed": "预览中，尚未导入",
    "applying": "正在导入",
    "applied": "已导入",
    "undone": "已撤销",
    "discarded": "已放弃",
}

NOT_FOUND = "您要找的内容不存在，可能已被更新。请从上方导航重新进入。"
READ_ONLY = "只读账号只能查看，不能做决定。"
NOT_JSON = "请求格式不正确：请以JSON格式提交，并写明要做的操作。"


async def _body_up_to(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is longer than `limit` (never all read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _replayed(request: Request, body: bytes) -> Request:
    """The same request with its body already read (so that its form can be parsed)."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def import_view(plan: ImportReport, app: App, zone: Any) -> dict[str, Any]:
    """A plan as the preview page shows it: rows with their changed fields in Chinese, the
    rejected rows' reasons, and for results the mail each applicant would get, rendered."""

    def shown(name: str, value: Any) -> str:
        return texts.import_value(name, value, zone)

    changed = [
        {
            "ref": ref,
            "fields": [
                {
                    "label": change.label,
                    "old": shown(change.name, change.old),
                    "new": shown(change.name, change.new),
                }
                for change in plan.changes_of(ref)
            ],
        }
        for ref in [*plan.changed, *(plan.added if plan.kind == "results" else [])]
    ]
    mails = []
    for mail in plan.mails:
        rendered = app.renderer.render(mail.context)
        mails.append(
            {
                "ref": mail.ref,
                "to": mail.to,
                "cc": mail.cc,
                "subject": rendered.subject,
                "text": rendered.text,
                "html": rendered.html,
            }
        )
    return {
        "added": [
            {"ref": ref, "title": (plan.after[ref] or {}).get("title", "")} for ref in plan.added
        ]
        if plan.kind == "submissions"
        else [],
        "changed": changed,
        "withdrawn": plan.withdrawn,
        "rejected": [problem.staff_text for problem in plan.rejections],
        "warnings": [problem.staff_text for problem in plan.problems],
        "mails": mails,
        "fingerprint": plan.fingerprint(),
    }


def who(staff: Staff) -> str:
    """The name a decision is recorded under."""
    return staff.display_name or staff.username


def audit_entry(entry: dict[str, Any], zone: Any) -> dict[str, Any]:
    """A register `decisions[]` entry as 操作记录 shows it, in Chinese."""
    choice = entry["params"].get("submission_ref") or ""
    return {
        **entry,
        "label": ACTION_LABELS.get((entry["kind"], entry["action"]), "其他"),
        "kind_label": KIND_LABELS.get(entry["kind"], "其他"),
        "choice": choice,
        "at_text": texts.when(datetime.fromisoformat(entry["at"]), zone),
        "undone_text": texts.when(datetime.fromisoformat(entry["undone_at"]), zone)
        if entry.get("undone_at")
        else "",
    }


def reply_links(register: dict[str, Any]) -> dict[str, str]:
    """For each `needs_reply` item: a `mailto:` link to answer from one's own mail client."""
    links: dict[str, str] = {}
    by_id = {message["id"]: message for message in register["messages"]}
    for item in todo_items(register):
        message = by_id.get(item.details.get("message_id"))
        if item.kind != "needs_reply" or message is None or not message["sender"]:
            continue
        links[item.id] = mailto(message["sender"], reply_subject(message["subject"]))
    return links


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_REPLY_PREFIX = re.compile(r"(?i)^(re|回复|答复)\s*[:：]")


def reply_subject(subject: str | None) -> str:
    """The subject of a reply: `Re: ` and the original on one line (line breaks and other
    control characters become spaces, so nothing can be slipped in as another header)."""
    line = " ".join(_CONTROL.sub(" ", subject or "").split())
    return line if _REPLY_PREFIX.match(line) else f"Re: {line}".rstrip()


def mailto(address: str, subject: str) -> str:
    """A `mailto:` link (RFC 6068): every character that could end the address or the field
    is percent-encoded, control characters dropped."""
    to = quote(_CONTROL.sub("", address).strip(), safe="@")
    return f"mailto:{to}?subject={quote(_CONTROL.sub(' ', subject), safe='')}"


def _attachment(session: Session, attachment_id: int | None) -> Attachment | None:
    return session.get(Attachment, attachment_id) if attachment_id else None


def _local_path(value: str | None) -> str:
    """`value` when it is a path on this site (never another site: no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return ""


def _query(request: Request) -> Callable[..., str]:
    """A helper for templates: this page's query string with some parameters changed."""

    def with_changes(**changes: Any) -> str:
        params = dict(request.query_params)
        params.update({key: str(value) for key, value in changes.items()})
        return "?" + urlencode({key: value for key, value in params.items() if value})

    return with_changes


def problem_text(item: Any) -> str:
    """A stored problem (`{code, params}`) as staff read it, in Chinese."""
    return Problem.from_json(item).staff_text


def todo_json_items(register: dict[str, Any]) -> list[dict[str, Any]]:
    """The queue as `/api/todo` publishes it."""
    return [todo_json(item) for item in todo_items(register)]


def create_app(app: App) -> Starlette:
    """The workspace for `app` (its settings, database, archive and clock)."""
    workspace = Workspace(app)
    page, api = workspace.page, workspace.api
    routes = [
        Route("/", page(workspace.overview)),
        Route("/todo", page(workspace.todo)),
        Route("/todo/{item_id:path}", workspace.todo_decide, methods=["POST"]),
        Route("/units", page(workspace.units)),
        Route("/units/{recommendation_id:int}", page(workspace.unit)),
        Route(
            "/units/{recommendation_id:int}/pages/{page:int}.png",
            page(workspace.unit_page_image),
        ),
        Route("/submissions", page(workspace.submissions)),
        Route("/submissions/{ref}", page(workspace.submission)),
        Route("/messages", page(workspace.messages)),
        Route("/messages/{message_id:int}", page(workspace.message)),
        Route(
            "/messages/{message_id:int}/attachments/{attachment_id:int}",
            page(workspace.attachment),
        ),
        Route("/outbox", page(workspace.outbox)),
        Route("/outbox/{outbox_id:int}", page(workspace.outbox_item)),
        Route("/audit", page(workspace.audit)),
        Route("/audit/{decision_id:int}/undo", workspace.audit_undo, methods=["POST"]),
        Route("/imports", page(workspace.imports)),
        Route("/imports", workspace.import_upload, methods=["POST"]),
        Route("/imports/{run_id:int}", page(workspace.import_page)),
        Route(
            "/imports/{run_id:int}/{action:str}",
            workspace.import_action,
            methods=["POST"],
        ),
        Route("/status", page(workspace.status)),
        Route("/login", workspace.login, methods=["GET", "POST"]),
        Route("/logout", workspace.logout, methods=["POST"]),
        Route("/healthz", workspace.healthz),
        Route("/api/register", api(workspace.api_register)),
        Route("/api/todo", api(workspace.api_todo)),
        Route("/api/todo/{item_id:path}", workspace.api_decide, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    application = Starlette(routes=routes, exception_handlers={404: workspace.not_found})
    application.add_middleware(SecurityHeaders)
    return application
