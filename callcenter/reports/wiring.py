"""Wiring the reports into the service (called by callcenter.service.wire): the service over
the database and the desk's calendar, the routes, the templates, and the daily rollup job."""

from __future__ import annotations

from pathlib import Path

from callcenter.bootstrap import Container
from callcenter.jobs import DailyJob, parse_time
from callcenter.pages.wiring import TEMPLATES as PAGE_TEMPLATES
from callcenter.pages.wiring import environments
from callcenter.reports import http, sales_http
from callcenter.reports.services import ReportsService
from schedules.config import DeskCalendar
from schedules.distribution import result_deadline

TEMPLATES = Path(__file__).with_name("templates")
# After the day's last calls and the maintainer's evening entries.
ROLLUP_AT = "23:30"


def reports_service(container: Container, desk: DeskCalendar) -> ReportsService:
    return ReportsService(
        container.sessions,
        container.clock,
        desk.tz,
        lambda day: result_deadline(day, desk.calendar, desk.result_deadline, desk.tz),
    )


def install_reports(container: Container, desk: DeskCalendar) -> ReportsService:
    service = reports_service(container, desk)
    container.route_tables.append(http.routes)
    container.route_tables.append(sales_http.routes)
    container.app_values[http.REPORTS] = service
    container.app_values[sales_http.SALES_SESSIONS] = container.sessions
    for lang, env in environments((TEMPLATES, PAGE_TEMPLATES)).items():
        container.app_values[http.JINJA[lang]] = env
    return service


def rollup_job(service: ReportsService) -> DailyJob:
    return DailyJob(
        "reports rollup", parse_time(ROLLUP_AT), service.daily_job, calling_days_only=False
    )
