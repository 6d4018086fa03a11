"""`daily_active_users`: active users and events per day and platform, staged, audited and published to the
warehouse."""

import duckdb as duckdb_api

from tvtime_platform.lib.write_audit_publish import Publication, mart_definitions, sql_build
from tvtime_platform.transforms.marts import DAILY_ACTIVE_USERS, daily_active_users_sql

INPUTS = ("app_events", "user_sessions")


def _summary(con: duckdb_api.DuckDBPyConnection, day_table: str) -> dict:
    users, events = con.execute(f"SELECT sum(active_users), sum(events) FROM {day_table}").fetchall()[0]
    return {"active_users_summed_over_platforms": int(users or 0), "events": int(events or 0)}


PUBLICATION = Publication(DAILY_ACTIVE_USERS)
defs = mart_definitions(PUBLICATION, INPUTS, sql_build(daily_active_users_sql, INPUTS), _summary, __file__)
