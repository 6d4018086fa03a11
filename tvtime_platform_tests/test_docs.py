"""The documentation holds together with the code: every relative link leads to a file, and the settings table of
docs/deployments.md lists exactly the settings the code reads."""

import re

from tvtime_platform.resources.deployment import CLOUD_SETTINGS, EMR_SETTINGS, SNOWFLAKE_ENDPOINT_SETTINGS
from tvtime_platform_tests.support import REPO

PAGES = [REPO / "README.md", REPO / "deploy" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
SETTING = re.compile(r"`((?:TVTIME|SNOWFLAKE|AWS)_[A-Z_]+)`")


def test_every_relative_link_leads_to_a_file():
    broken = [
        (page.relative_to(REPO), target)
        for page in PAGES
        for target, _ in LINK.findall(page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]
    assert broken == []


def test_the_settings_table_lists_what_the_code_reads():
    text = (REPO / "docs" / "deployments.md").read_text()
    table = text[text.index("| variable | what it is |") :].split("\n\n", 1)[0]
    documented = set(SETTING.findall(table))
    required = set(CLOUD_SETTINGS) | set(EMR_SETTINGS) | set(SNOWFLAKE_ENDPOINT_SETTINGS)
    assert required <= documented, required - documented
    source = "\n".join(
        p.read_text() for p in (REPO / "tvtime_platform").rglob("*") if p.suffix in (".py", ".yaml") and p.is_file()
    )
    read_by_boto = {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}  # the AWS SDK's own
    unread = {v for v in documented - read_by_boto if f'"{v}"' not in source}
    assert unread == set(), "documented settings the code never reads"
