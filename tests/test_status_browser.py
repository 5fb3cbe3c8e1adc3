"""The status page in a real headless browser (Debian's chromium, driven by
Selenium through chromedriver), as a user would open it.

It must show the Services of the folder with their DNS names, the manifest
problems with file and line, and answer the query box.  The browser talks
to 127.0.0.1 only; the page fetches nothing from anywhere else (its Content
Security Policy would block it, and the console is checked for errors).
Skipped only when chromium is not installed (``tests/run`` installs it).
"""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import write_atomic
from helpers.manifests import documents, service, write
from status_client import http_server  # noqa: F401

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 20.0  # seconds for anything on the page to appear

if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip("chromium and chromium-driver are not installed "
                "(tests/run installs them with apt-get)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def svc(name: str, ns: str, ip: str) -> str:
    return service(name, ns, cluster_ip=ip, ports=[{"name": "http", "port": 80}])


GOOD = svc("web", "default", "10.96.7.7")
# The second document (starting on line BAD_LINE) has a bad clusterIP.
BROKEN = documents(svc("cart", "shop", "10.96.7.20"),
                   service("bad", "shop", cluster_ip="300.1.2.3", ports=()))
BAD_LINE = svc("cart", "shop", "10.96.7.20").count("\n") + 2


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-extensions",
                 "--disable-default-apps", f"--user-data-dir={profile}",
                 "--window-size=1280,1024"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, predicate, message: str):
    return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
        lambda d: predicate(d), message=message)


def find(driver, css: str):
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def test_status_page_shows_services_errors_and_answers(http_server, browser, tmp_path):
    folder = tmp_path / "manifests"
    write(folder, "web.yaml", GOOD)
    write(folder, "shop.yaml", BROKEN)
    srv = http_server(folder)
    browser.get(f"http://127.0.0.1:{srv.http_port}/")
    assert browser.title == "coredns-py status"

    # A Service from the folder, its ClusterIP and the names it answers.
    row = wait_for(browser, lambda d: find(d, 'tr.service[data-service="default/web"]'),
                   "the web Service row")
    assert "10.96.7.7" in row.text
    assert "web.default.svc.cluster.local." in row.text
    assert "_http._tcp.web.default.svc.cluster.local." in row.text
    assert find(browser, 'tr.service[data-service="shop/cart"]') is not None
    assert "ready" == browser.find_element(By.ID, "ready").text

    # The broken file, with its line.
    err = wait_for(browser, lambda d: find(d, "#errors tr.error"), "the error row")
    assert err.get_attribute("data-file") == str(folder / "shop.yaml")
    assert err.get_attribute("data-line") == str(BAD_LINE)
    assert str(folder / "shop.yaml") in err.text and str(BAD_LINE) in err.text
    assert "Service shop/bad" in err.text and "spec.clusterIP" in err.text

    # The query box: type a name, get the server's answer.
    box = browser.find_element(By.ID, "query-name")
    box.clear()
    box.send_keys("web.default.svc.cluster.local")
    Select(browser.find_element(By.ID, "query-type")).select_by_value("A")
    browser.find_element(By.ID, "query-submit").click()
    out = browser.find_element(By.ID, "query-result")
    wait_for(browser, lambda d: out.get_attribute("data-state") == "done", "the answer")
    assert "status: NOERROR" in out.text
    assert "web.default.svc.cluster.local. 5 IN A 10.96.7.7" in out.text

    # Enter works too, and a name that does not exist says so.
    box.clear()
    box.send_keys("nope.shop.svc.cluster.local\n")
    wait_for(browser, lambda d: out.get_attribute("data-rcode") == "NXDOMAIN", "NXDOMAIN")
    assert "status: NXDOMAIN" in out.text

    # Clicking a DNS name on the page asks it.
    browser.find_element(
        By.CSS_SELECTOR, 'tr.dns-name[data-name="_http._tcp.web.default.svc.cluster.local."] '
                         'a').click()
    wait_for(browser, lambda d: "IN SRV 0 100 80 web.default.svc.cluster.local." in out.text,
             "the SRV answer")

    # A change in the folder shows up without reloading the page.
    write_atomic(folder / "api.yaml", svc("api", "default", "10.96.7.30"))
    wait_for(browser, lambda d: find(d, 'tr.service[data-service="default/api"]'),
             "the new Service after a reload")

    # Nothing failed in the page: no script errors, no blocked fetches.
    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, severe
