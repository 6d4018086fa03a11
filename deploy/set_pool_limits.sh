#!/bin/sh
# Set the concurrency pools of the instance in $DAGSTER_HOME (run once per deployment, and after a change).
#   warehouse_load     COPY INTO the marts' staging tables: at most 4 at once
#   warehouse_publish  swapping a mart in rebuilds its table: one at a time
#   aws_batch          factorization jobs on AWS Batch: at most 2 at once
set -eu
DAGSTER="${DAGSTER:-dagster}"
"$DAGSTER" instance concurrency set warehouse_load 4
"$DAGSTER" instance concurrency set warehouse_publish 1
"$DAGSTER" instance concurrency set aws_batch 2
