# Opening a report in a real headless browser (Debian's Chromium, driven by Selenium through
# Debian's chromedriver): what the page logged to its console, every network request it made,
# and what its timeline holds (read from Bokeh's own document model), plus a screenshot.
import json
import os
import shutil

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# the timeline as the page's Bokeh document holds it: one row per step (the "steps" renderer),
# and each phase's bars (renderers named phase-PHASE)
READ_TIMELINE = """
const doc = Bokeh.documents[0];
const steps = doc.get_model_by_name('steps').data_source.data;
const phases = {};
for (const p of ['queued', 'image', 'stage_in', 'run', 'stage_out']) {
  const d = doc.get_model_by_name('phase-' + p).data_source.data;
  phases[p] = {y: Array.from(d.y), left: Array.from(d.left), right: Array.from(d.right)};
}
return JSON.stringify({rows: Array.from(steps.y), state: Array.from(steps.state),
                       outline: Array.from(steps.outline), phases: phases,
                       table_rows: doc.get_model_by_name('steps-table').source.data.name.length});
"""


def open_report(path, screenshot):
    """(console messages, requested URLs, timeline) of the report at path; a screenshot is saved."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert shutil.which(CHROMIUM) and os.path.exists(CHROMEDRIVER), "dev/setup installs chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.get("file://" + os.path.abspath(path))
        driver.implicitly_wait(10)
        driver.find_element("css selector", ".bk-Figure, .bk-root, div[data-root-id]")
        timeline = json.loads(driver.execute_script(READ_TIMELINE))
        driver.save_screenshot(screenshot)
        console = [entry for entry in driver.get_log("browser")]
        requests = []
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                requests.append(message["params"]["request"]["url"])
        return console, requests, timeline
    finally:
        driver.quit()


def check_page(path, screenshot, steps, failed):
    """The report loads with no console error and no request beyond its own file; its timeline has
    one row per step with the phases in order; the failed steps (and only they) are outlined."""
    console, requests, timeline = open_report(path, screenshot)
    assert [m for m in console if m["level"] in ("SEVERE", "WARNING")] == [], console
    assert [url for url in requests if url != "file://" + os.path.abspath(path) and not url.startswith("data:")] == []
    assert len(timeline["rows"]) == len(set(timeline["rows"])) == steps and timeline["table_rows"] == steps
    outlined = {row for row, colour in zip(timeline["rows"], timeline["outline"]) if colour}
    assert len(outlined) == failed
    ends = {}
    for phase in ("queued", "image", "stage_in", "run", "stage_out"):  # in order, each after the one before
        bars = timeline["phases"][phase]
        for row, left, right in zip(bars["y"], bars["left"], bars["right"]):
            assert left <= right and left >= ends.get(row, float("-inf")) - 1e-6, (row, phase)
            ends[row] = right
    ran = {row for row in timeline["rows"] if row in set(timeline["phases"]["run"]["y"])}
    return timeline, ran, outlined
