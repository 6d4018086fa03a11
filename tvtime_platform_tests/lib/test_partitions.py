"""A run of day-partitioned assets that names no day (`dg launch --partition ""`) fails saying how to name one."""

import dagster as dg
import pytest

from tvtime_platform.resources.deployment import local_resources
from tvtime_platform_tests.support import ASSETS, CHECKS


# The first step of each day-partitioned job (ingest_events and daily_pipeline start at app_events, recommendations at
# user_show_interactions; later steps are then skipped), and a publication run alone. (A step reading a window of days
# of another table fails inside Dagster before its code or its IO manager runs.)
@pytest.mark.parametrize("asset", ["app_events", "user_show_interactions", "daily_active_users"])
def test_a_run_without_a_day_fails_saying_how_to_name_one(tmp_path, asset):
    result = dg.materialize(
        [*ASSETS, *CHECKS],
        selection=[asset],
        resources=local_resources(tmp_path),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "names no day" in message and "--partition 2024-03-01" in message
    assert "Cannot access partition_key" not in message
