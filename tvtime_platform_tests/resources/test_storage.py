"""Storage on S3 (moto's server): the requests DuckDB and the small-file reads make, counted as the store sees them."""

import json

import duckdb
import fsspec
import pytest

from tvtime_platform.resources.storage import protocol_filesystem, read_small_file
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.support import requests_to_the_store


@pytest.fixture
def bucket(s3_endpoint) -> str:
    return new_bucket()


def test_duckdb_asks_the_store_about_a_parquet_file_once_per_process(bucket, tmp_path):
    store = fsspec.filesystem("s3", use_listings_cache=False)
    for k in range(3):
        duckdb.sql(f"COPY (SELECT range AS x FROM range({k + 1})) TO '{tmp_path}/{k}.parquet'")
        store.put_file(f"{tmp_path}/{k}.parquet", f"{bucket}/t/{k}.parquet")
    fs = protocol_filesystem("s3")
    sent = requests_to_the_store(fs)
    con = duckdb.connect()
    con.register_filesystem(fs)
    files = [f"s3://{bucket}/t/{k}.parquet" for k in range(3)]
    for _ in range(3):  # three queries, as a run reads a day's files several times
        assert con.execute("SELECT count(*), sum(x) FROM read_parquet($f)", {"f": files}).fetchall() == [(6, 4)]
    heads = sorted(key for operation, key in sent if operation == "HeadObject")
    assert heads == ["t/0.parquet", "t/1.parquet", "t/2.parquet"]  # without keeping them: 3 or 4 a file and query

    # A file deleted is not read from what was kept: its read fails, as it would have.
    store.rm_file(f"{bucket}/t/2.parquet")
    with pytest.raises(duckdb.Error):
        con.execute("SELECT count(*) FROM read_parquet($f)", {"f": files}).fetchall()


def test_files_that_change_are_asked_about_each_time(bucket):
    store = fsspec.filesystem("s3", use_listings_cache=False)
    fs = protocol_filesystem("s3")
    con = duckdb.connect()
    con.register_filesystem(fs)
    catalog = f"s3://{bucket}/catalog.jsonl"
    for shows in ([1], [1, 2, 3]):  # a catalog rewritten under its name is read as it is now
        lines = "".join(json.dumps({"show_id": s}) + "\n" for s in shows)
        store.pipe_file(catalog.removeprefix("s3://"), lines.encode())
        assert con.execute("SELECT count(*) FROM read_json($f)", {"f": catalog}).fetchall() == [(len(shows),)]

    # A Parquet file not there when first asked about is found once it is written.
    missing = f"s3://{bucket}/later.parquet"
    with pytest.raises(duckdb.Error):
        con.execute("SELECT * FROM read_parquet($f)", {"f": missing}).fetchall()
    con.execute(f"COPY (SELECT 1 AS x) TO '{missing}'")
    assert con.execute("SELECT * FROM read_parquet($f)", {"f": missing}).fetchall() == [(1,)]


def test_a_small_file_is_read_in_one_request(bucket):
    store = fsspec.filesystem("s3", use_listings_cache=False)
    store.pipe_file(f"{bucket}/record.json", b'{"tables": {}}')
    sent = requests_to_the_store(fsspec.filesystem("s3", use_listings_cache=False))
    assert read_small_file(f"s3://{bucket}/record.json") == b'{"tables": {}}'
    assert sent == [("GetObject", "record.json")]  # s3fs alone would first ask its size (HeadObject)
    with pytest.raises(FileNotFoundError):
        read_small_file(f"s3://{bucket}/gone.json")
