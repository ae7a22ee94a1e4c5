"""Result mails queued straight into the outbox, for tests of delivery rather than intake."""

from __future__ import annotations

from sqlmodel import Session

from notifications.contexts import ResultNotice
from service.bootstrap import App
from service.outbox import queue_mail


def queue_results(app: App, count: int, *, first: int = 1) -> None:
    """`count` result mails, each to its own applicant (`applicant{N}@example.cn`)."""
    with Session(app.engine) as session:
        for number in range(first, first + count):
            ref = f"KJCX2025-{number:04d}"
            queue_mail(
                app,
                session,
                key=f"result:{ref}:1:selected",
                context=ResultNotice(
                    campaign_name=app.settings.campaign.name,
                    submission_ref=ref,
                    submission_title=f"案例{number}",
                    applicant=f"申报单位{number}",
                    contact_name="李娜",
                    result="selected",
                ),
                to=[f"applicant{number}@example.cn"],
                submission_ref=ref,
            )
        session.commit()
