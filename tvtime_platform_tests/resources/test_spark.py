"""What `spark-submit` is given: the job's own platform modules as a zip (`--py-files`), which alone must provide what
the job imports, and the settings (`--conf`)."""

import subprocess
import sys
import zipfile

from tvtime_platform.resources.spark import JOB_JAVA_OPTIONS, PACKAGE, job_modules_zip, submit_conf


def test_the_zip_provides_the_reader_the_job_imports(tmp_path):
    path = tmp_path / "tvtime_modules.zip"
    path.write_bytes(job_modules_zip())
    assert job_modules_zip() == path.read_bytes()  # same sources, same bytes: EMR stages it under its hash
    with zipfile.ZipFile(path) as archive:
        assert (
            archive.read("tvtime_platform/transforms/landed_lines.py")
            == (PACKAGE / "transforms" / "landed_lines.py").read_bytes()
        )
    # First on the path, as on a cluster where the platform is not installed: the import resolves inside the zip.
    code = (
        f"import sys; sys.path.insert(0, {str(path)!r}); from tvtime_platform.transforms import landed_lines; "
        "import tvtime_platform; print(landed_lines.__file__); print(tvtime_platform.__file__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert all(line.startswith(str(path)) for line in result.stdout.split()), result.stdout


def test_the_jobs_jvm_options_follow_a_deployments_own():
    conf = submit_conf({"spark.sql.shuffle.partitions": "4", "spark.driver.extraJavaOptions": "-Dtz=UTC -Xss4m"})
    settings = dict(argument.split("=", 1) for argument in conf[1::2])
    assert conf[::2] == ["--conf"] * 3
    assert settings == {
        "spark.sql.shuffle.partitions": "4",
        "spark.driver.extraJavaOptions": f"-Dtz=UTC -Xss4m {JOB_JAVA_OPTIONS}",
        "spark.executor.extraJavaOptions": JOB_JAVA_OPTIONS,
    }
