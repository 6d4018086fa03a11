"""The Iceberg metadata files a process reads and writes on S3 (moto): each written with one request, read with one
request once per process, never read back after writing; other files pass through untouched. A table's metadata is
parsed once per process, and every commit is read."""

import dagster as dg
import pytest

from tvtime_platform.lake import metadata_files
from tvtime_platform.lake.metadata_files import KeptFileIO
from tvtime_platform.resources.duckdb_engine import DuckDBEngine
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.support import lake_at, requests_to_the_store, write_partition


@pytest.fixture
def bucket(s3_endpoint) -> str:
    return new_bucket()


def test_a_metadata_file_costs_one_request_to_write_and_none_to_read_back(bucket):
    file_io = KeptFileIO({})
    location = f"s3://{bucket}/lake/t/metadata/00001-0b6a.metadata.json"
    sent = requests_to_the_store(file_io.get_fs("s3"))
    with file_io.new_output(location).create() as stream:
        stream.write(b'{"format-version": 2}')
    assert sent == [("PutObject", "lake/t/metadata/00001-0b6a.metadata.json")]  # no look for the name first
    sent.clear()
    for _ in range(3):
        with file_io.new_input(location).open() as stream:
            assert stream.read() == b'{"format-version": 2}'
    assert len(file_io.new_input(location)) == 21 and sent == []


def test_a_metadata_file_another_process_wrote_is_read_with_one_request_once(bucket):
    file_io = KeptFileIO({})
    location = f"s3://{bucket}/lake/t/metadata/snap-1-0-0b6a.avro"
    file_io.get_fs("s3").pipe_file(location, b"avro bytes")
    metadata_files.forget()  # as a new process
    sent = requests_to_the_store(file_io.get_fs("s3"))
    for _ in range(3):
        assert len(file_io.new_input(location)) == 10
        with file_io.new_input(location).open() as stream:
            assert stream.read() == b"avro bytes"
    assert sent == [("GetObject", "lake/t/metadata/snap-1-0-0b6a.avro")]  # no request for its size either


def test_a_deleted_metadata_file_is_no_longer_kept(bucket):
    file_io = KeptFileIO({})
    location = f"s3://{bucket}/lake/t/metadata/0b6a-m0.avro"
    with file_io.new_output(location).create() as stream:
        stream.write(b"manifest")
    file_io.delete(location)
    with pytest.raises(FileNotFoundError):
        file_io.new_input(location).open()
    assert not file_io.new_input(location).exists()


def test_a_data_file_is_read_as_pyiceberg_reads_it(bucket):
    file_io = KeptFileIO({})
    location = f"s3://{bucket}/lake/t/dt=2024-03-01/v1/part-0.parquet"
    file_io.get_fs("s3").pipe_file(location, b"PAR1")
    sent = requests_to_the_store(file_io.get_fs("s3"))
    for _ in range(2):
        with file_io.new_input(location).open() as stream:
            assert stream.read() == b"PAR1"
    assert [operation for operation, _ in sent].count("GetObject") == 2  # not kept: a data file can be large


def test_a_tables_metadata_is_parsed_once_per_process_and_each_commit_is_read(lake_url):
    lake = lake_at(lake_url)
    con = DuckDBEngine(remote_protocols=["s3"]).connect()
    key = dg.AssetKey("t")
    write_partition(lake, con.sql("SELECT 1 AS x"), key, "2024-03-01")
    metadata_files.forget()  # as a new process
    first, again = lake.iceberg_table(key), lake.iceberg_table(key)
    assert again.metadata is first.metadata  # parsed once
    write_partition(lake_at(lake_url), con.sql("SELECT 2 AS x"), key, "2024-03-02")  # another writer's commit
    assert set(lake.partitions_through(key, "2024-12-31")) == {"2024-03-01", "2024-03-02"}
    assert lake.iceberg_table(key).metadata_location != first.metadata_location
