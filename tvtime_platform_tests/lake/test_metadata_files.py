"""The Iceberg metadata files a process reads and writes on S3 (moto): each written with one request, read with one
request once per process, never read back after writing; other files pass through untouched."""

import pytest

from tvtime_platform.lake import metadata_files
from tvtime_platform.lake.metadata_files import KeptFileIO
from tvtime_platform_tests.emulators import new_bucket
from tvtime_platform_tests.support import requests_to_the_store


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
