"""The sensor that evaluates every asset's automation condition (`lib/conditions.py`)."""

import dagster as dg

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Materializes a day downstream when what it reads changed (follow_upstream), held back by failed "
    "blocking checks.",
)
