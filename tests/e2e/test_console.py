"""The web console at https://<master>/backup/ in a real headless Chromium (Debian's chromium, driven through
its chromedriver by selenium), against a real cluster archiving continuously: sign in with a token, see the
backups and the timeline, dry-run then restore one subtree from the page (by keyboard) and watch it
finish, through a follower's Admin Router; refused without a token; "not permitted" without the permission.

Chromium trusts the cluster's certificates only: their public keys are pinned with
``--ignore-certificate-errors-spki-list`` (the masters' and the CA's), not every certificate.
With ``DCOS_BACKUP_SCREENSHOTS=DIR`` the tests save the screenshots of docs/operations.md into DIR.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tests.helpers import seeded_cluster, wait_for

from dcos_backup.api.paths import CREATE, LIST, RESTORE
from dcos_backup.local import security
from dcos_backup.logical import connect
from dcos_backup.physical.continuous.index import RepoIndex
from dcos_backup.physical.continuous.repository import Repository
from dcos_backup.storage.crypto import load_key
from dcos_backup.storage.locations import open_store
from dcos_backup.testing.archiving import SNAP_COUNT

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

pytestmark = pytest.mark.e2e
TIMEOUT = 120  # seconds for a backup or a restore on a shared machine
APP = "/marathon/state/app/console-web"


def spki_hash(pem: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def https(cluster) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(cluster.files.ca_cert)), timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    """A 3-master cluster archiving continuously, with an app to break and one READY backup of it; a user
    without permissions. (cluster, superuser token, backup id, label)."""
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
    directory = tmp_path_factory.mktemp("console")
    with seeded_cluster(
        directory / "c", apps=20, seed=4, zk_config=[("snapCount", str(SNAP_COUNT))], zk_archive=str(directory / "repo")
    ) as cluster:
        zk = connect(cluster.zk_hosts)
        zk.create(APP, b'{"id": "/console-web", "instances": 3}', makepath=True)
        zk.create(APP + "/tasks", b"[1, 2, 3]")
        zk.stop()
        security.add_user(cluster.files, cluster.zk_hosts, "viewer", [])
        repository = Repository(open_store(str(directory / "repo")), load_key(cluster.files.repo_key))
        wait_for(
            lambda: {r.stream for r in RepoIndex(repository).ranges()} >= {f"master-{m.id}" for m in cluster.masters},
            timeout=TIMEOUT,
            what="every master's archive to have a restorable range",
        )
        token = security.login(cluster.files, cluster.zk_hosts, security.BOOTSTRAP_USER)
        label = "console-nightly"
        with https(cluster) as http:
            base = cluster.master(1).admin_router_url
            headers = {"Authorization": f"token={token}"}
            created = http.post(base + CREATE, json={"label": label}, headers=headers)
            assert created.status_code == 200, created.text
            backup_id = created.json()["backup_info"]["id"]

            def ready() -> bool:
                doc = http.get(base + LIST, params={"prefix": backup_id, "wait": 10}, headers=headers).json()
                return doc["backup_info"][0]["status"] == "STATUS_READY"

            wait_for(ready, timeout=TIMEOUT, what="the backup to be READY")
        yield cluster, token, backup_id, label


@pytest.fixture(scope="module")
def browser(site) -> Iterator[webdriver.Chrome]:
    cluster = site[0]
    pins = [spki_hash(cluster.files.ca_cert)] + [spki_hash(cluster.files.master_cert(m.id)) for m in cluster.masters]
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
        "--ignore-certificate-errors-spki-list=" + ",".join(pins),
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, name: str) -> None:
    target = os.environ.get("DCOS_BACKUP_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(target) / f"{name}.png"))


def sign_in(driver, base: str, token: str) -> None:
    driver.delete_all_cookies()
    driver.get(base + "/backup/")
    wait_for(lambda: driver.current_url.endswith("/backup/login"), what="the sign-in page")
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    driver.find_element(By.ID, "signin").click()


def text_of(driver, element_id: str) -> str:
    elements = driver.find_elements(By.ID, element_id)
    return elements[0].text if elements else ""


def test_refused_without_a_token(site):
    """Nothing but the sign-in page without a valid token; the API refuses a cookie sent cross-site."""
    cluster, token, backup_id, _ = site
    base = cluster.master(2).admin_router_url
    with https(cluster) as http:
        page = http.get(base + "/backup/")
        assert page.status_code == 303 and page.headers["location"] == "/backup/login"
        assert http.get(base + "/backup/timeline.json").status_code == 401
        forged = http.get(base + "/backup/", headers={"Cookie": f"dcos-acs-auth-cookie={token[:-4]}AAAA"})
        assert forged.status_code == 303
        bad = http.post(base + "/backup/login", data={"token": "nonsense"}, headers={"Origin": base})
        assert bad.status_code == 401 and "dcos-acs-auth-cookie" not in bad.headers.get("set-cookie", "")
        # A page elsewhere making the browser post with its cookie: refused before anything is read.
        cross = http.post(
            base + RESTORE,
            json={"id": backup_id, "dry_run": True},
            headers={"Origin": "https://evil.example", "Cookie": f"dcos-acs-auth-cookie={token}"},
        )
        assert cross.status_code == 403 and "cross-site" in cross.json()["errors"][0]
        same = http.post(
            base + RESTORE,
            json={"id": backup_id, "dry_run": True},
            headers={"Origin": base, "Cookie": f"dcos-acs-auth-cookie={token}"},
        )
        assert same.status_code == 200 and same.json()["dry_run"] is True
        assert http.get(base + "/backup/", headers={"Cookie": f"dcos-acs-auth-cookie={token}"}).status_code == 200


def test_sign_in_and_see_the_backups_and_the_timeline(site, browser):
    cluster, token, backup_id, label = site
    base = cluster.master(1).admin_router_url
    browser.get(base + "/backup/login")
    screenshot(browser, "console-sign-in")
    sign_in(browser, base, token)
    wait_for(lambda: label in text_of(browser, "backup-table"), what="the backup in the table")
    assert "READY" in browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{backup_id}"]').text
    # The timeline: every master's archive, its restorable stretch drawn and listed, the backup as a marker.
    wait_for(lambda: "Loading" not in text_of(browser, "ranges"), what="the timeline's data")
    ranges = text_of(browser, "ranges")
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline-chart svg rect.range"), (
        ranges,
        text_of(browser, "notice"),
    )
    assert all(f"master-{m.id}" in ranges for m in cluster.masters), ranges
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline-chart svg path.backup")
    browser.find_element(By.CSS_SELECTOR, '#timeline [data-span="3600000"]').click()
    chart = browser.find_element(By.ID, "timeline-chart")
    chart.send_keys(Keys.ENTER)  # the moment under the cursor (the window's middle... or now)
    wait_for(lambda: text_of(browser, "moment"), what="the moment described")
    assert browser.find_element(By.ID, "timeline-chart").get_attribute("aria-label")
    screenshot(browser, "console-overview")


def test_dry_run_then_restore_a_subtree_by_keyboard_through_a_follower(site, browser):
    """Master 2's Admin Router (a follower: the job is forwarded to the leader): break one app, dry-run its
    subtree (the confirmation only appears after it), type the label, restore, watch it finish."""
    cluster, token, backup_id, label = site
    zk = connect(cluster.zk_hosts)
    try:
        zk.set(APP, b"broken")
        zk.delete(APP + "/tasks")
        base = cluster.master(2).admin_router_url
        sign_in(browser, base, token)
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f'#restore-backup option[value="{backup_id}"]'))
        select = browser.find_element(By.ID, "restore-backup")
        select.send_keys(Keys.HOME)  # focus, the newest backup is ours
        assert select.get_attribute("value") == backup_id
        assert not browser.find_element(By.ID, "confirm").is_displayed()
        assert browser.find_element(By.ID, "restore-start").get_attribute("disabled")
        select.send_keys(Keys.TAB)
        path = browser.switch_to.active_element
        assert path.get_attribute("id") == "restore-path"
        path.send_keys(APP, Keys.TAB)
        assert browser.switch_to.active_element.get_attribute("id") == "dry-run"
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        wait_for(lambda: text_of(browser, "dry-run-summary"), timeout=TIMEOUT, what="the dry run's difference")
        summary = text_of(browser, "dry-run-summary")
        assert "create 1, update 1, delete 0" in summary, summary
        changes = text_of(browser, "dry-run-result")
        assert f"create {APP}/tasks" in changes and f"update {APP}" in changes
        # Confirming takes the label, exactly.
        confirm = browser.switch_to.active_element
        assert confirm.get_attribute("id") == "confirm-label"
        confirm.send_keys(label[:-1])
        assert browser.find_element(By.ID, "restore-start").get_attribute("disabled")
        confirm.send_keys(label[-1])
        screenshot(browser, "console-restore")
        confirm.send_keys(Keys.TAB)
        assert browser.switch_to.active_element.get_attribute("id") == "restore-start"
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        status = browser.find_element(By.ID, "restore-status")
        wait_for(lambda: status.get_attribute("data-state") == "READY", timeout=TIMEOUT, what="the restore READY")
        assert "created 1, updated 1, deleted 0" in status.text, status.text
        assert zk.get(APP)[0] == b'{"id": "/console-web", "instances": 3}'
        assert zk.get(APP + "/tasks")[0] == b"[1, 2, 3]"
        screenshot(browser, "console-restored")
    finally:
        zk.stop()


def test_restore_needs_the_dry_run_of_the_same_choice(site, browser):
    """Changing the subtree after a dry run takes the confirmation away again."""
    cluster, token, backup_id, label = site
    base = cluster.master(1).admin_router_url
    sign_in(browser, base, token)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f'#restore-backup option[value="{backup_id}"]'))
    Select(browser.find_element(By.ID, "restore-backup")).select_by_value(backup_id)
    browser.find_element(By.ID, "restore-path").send_keys(APP)
    browser.find_element(By.ID, "dry-run").click()
    wait_for(lambda: "Computing" not in text_of(browser, "dry-run-result"), timeout=TIMEOUT, what="the dry run")
    assert text_of(browser, "dry-run-summary"), text_of(browser, "dry-run-result")
    browser.find_element(By.ID, "confirm-label").send_keys(label)
    assert not browser.find_element(By.ID, "restore-start").get_attribute("disabled")
    browser.find_element(By.ID, "restore-path").send_keys("/tasks")
    assert not browser.find_element(By.ID, "confirm").is_displayed()
    assert browser.find_element(By.ID, "restore-start").get_attribute("disabled")


def test_a_user_without_the_permission_is_not_permitted(site, browser):
    cluster = site[0]
    base = cluster.master(3).admin_router_url
    sign_in(browser, base, security.login(cluster.files, cluster.zk_hosts, "viewer"))
    wait_for(lambda: text_of(browser, "forbidden"), what="the refusal")
    assert browser.find_element(By.ID, "forbidden-title").text == "Not permitted"
    assert "dcos:adminrouter:ops:system-backup" in text_of(browser, "forbidden")
    assert not browser.find_elements(By.ID, "backup-table")
    screenshot(browser, "console-not-permitted")
    # Reloading the page with that cookie: still nothing but the refusal.
    browser.get(base + "/backup/")
    assert browser.find_elements(By.ID, "forbidden-title"), (browser.current_url, browser.title)
    assert browser.find_element(By.ID, "forbidden-title").text == "Not permitted"
    assert not browser.find_elements(By.ID, "backup-table")
