"""The course's widgets in a real JupyterLab, driven by headless Chromium (issue 15 item 7, issue 17).

A JupyterLab server is started on a free local port (127.0.0.1, a token, no browser) over a temporary
folder holding copies of the notebooks (so neither a run nor an autosave touches the committed ones; the
figures they save go to that folder too, ``$SBIR_FIGURES_ROOT``), and
the Debian ``chromium`` is driven through the ``playwright`` package (``executable_path``; playwright's own
browser download is never used). Each test runs a notebook up to its widget cell in the browser and then:

- notebook 06: the retrieval explorer renders, and moving its query slider redraws it;
- notebook 09: a stroke drawn with the mouse on the sketch pad's canvas updates the results panel.

Screenshots go to ``notebooks/_executed/screenshots/`` (git-ignored). The tests skip, saying why, where
there is no Chromium, no playwright package or no JupyterLab. Notebook 09 rebuilds its DSSA network on first
use (a few minutes on a CPU; cached under ``runs/`` afterwards).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "notebooks" / "_executed" / "screenshots"
#: Chromium flags: no GPU, no network side-channels, no first-run UI (the user data dir is a fresh one)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_S = 90  # JupyterLab answering its REST API
CELL_TIMEOUT_S = 900  # a notebook run up to its widget (notebook 09 may rebuild a network first)
UPDATE_TIMEOUT_S = 60  # a widget redrawn after an interaction

pytestmark = [pytest.mark.slow, pytest.mark.realdata]


def chromium_path() -> str | None:
    """``$SBIR_CHROMIUM``, else the first of Debian's ``chromium`` / ``chromium-browser`` on the PATH."""
    cand = os.environ.get("SBIR_CHROMIUM")
    if cand:
        return cand if Path(cand).exists() else None
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


def _skip_reason() -> str | None:
    if chromium_path() is None:
        return ("no Chromium: apt-get install -y chromium (or set $SBIR_CHROMIUM); .ci/run installs it when it can")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: python -m pip install -e '.[dev]'"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "JupyterLab is missing: python -m pip install -e '.[notebooks]'"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(folder: Path) -> None:
    """User settings of the test's JupyterLab: no autosave, every cell in the DOM (no windowing), no news."""
    settings = {
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                            "checkForUpdates": False},
    }
    for rel, value in settings.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``(base url, token)`` of a JupyterLab serving copies of notebooks 06 and 09; shut down afterwards."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from sbir_lib.data.datasets import real_data_available

    if not real_data_available("shoes"):
        pytest.skip("QMUL shoes not downloaded (python data_download.py --all): the widgets need its records")
    tmp = tmp_path_factory.mktemp("lab")
    work = tmp / "notebooks"
    work.mkdir()
    for nb in list((ROOT / "notebooks").glob("06_*.ipynb")) + list((ROOT / "notebooks").glob("09_*.ipynb")):
        shutil.copy(nb, work / nb.name)
    _write_settings(tmp / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    # the notebooks' kernels inherit this: figures they save go to the temporary folder, not figures/
    env = {**os.environ, "SBIR_PROFILE": "quick", "SBIR_FIGURES_ROOT": str(tmp / "figures"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "JUPYTER_CONFIG_DIR": str(tmp / "config")}
    with open(tmp / "jupyterlab.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.extension_manager=readonly"] + (["--allow-root"] if os.geteuid() == 0 else []),
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for_server(base, token, proc, tmp / "jupyterlab.log", log)
            yield base, token
        finally:
            _shutdown(base, token, proc)


def _wait_for_server(base: str, token: str, proc, log_path: Path, log) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"JupyterLab did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)


def _shutdown(base: str, token: str, proc) -> None:
    """Stop the server (and its kernels) through its API; terminate, then kill, the process we started."""
    try:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST"),
                               timeout=10)
        proc.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    """A headless Chromium context (fresh user data dir) through playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium_path(), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1500, "height": 1100})
        try:
            yield ctx
        finally:
            ctx.close()


#: JavaScript: the notebook panel of the path ``name`` in this JupyterLab page (``window.jupyterapp`` is exposed
#: by ``--LabApp.expose_app_in_browser``)
PANEL = "(name) => Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === name)"


def open_notebook(browser, lab, name: str):
    """A new page with notebook ``name`` open, active, and its kernel started."""
    base, token = lab
    page = browser.new_page()
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}", timeout=SERVER_START_S * 1000)
    # the app object appears only once JupyterLab has loaded (slower on a busy machine): not yet is "wait"
    page.wait_for_function(f"""(name) => {{ if (!window.jupyterapp || !window.jupyterapp.shell) {{ return false; }}
        const p = ({PANEL})(name);
        if (!p) {{ return false; }}
        window.jupyterapp.shell.activateById(p.id);
        return p.sessionContext.session && p.sessionContext.session.kernel
            && p.content.widgets.length > 0; }}""", arg=name, timeout=SERVER_START_S * 1000, polling=500)
    return page


def run_through(page, name: str, source: str) -> None:
    """In notebook ``name``, run every cell above the code cell whose source is ``source``, then that cell,
    and wait for the kernel to finish; fails on a cell error."""
    index = page.evaluate(f"""([name, src]) => {{
        const p = ({PANEL})(name);
        window.jupyterapp.shell.activateById(p.id);
        const i = p.content.widgets.findIndex(c => c.model.type === 'code'
                                                  && c.model.sharedModel.getSource() === src);
        if (i >= 0) {{ p.content.activeCellIndex = i; }}
        return i;
    }}""", [name, source])
    assert index >= 0, f"no cell {source!r} in {name}"
    page.evaluate("""async () => {
        await window.jupyterapp.commands.execute('notebook:run-all-above');
        await window.jupyterapp.commands.execute('notebook:run-cell');
    }""")
    page.wait_for_function(f"""([name, i]) => {{
        const p = ({PANEL})(name);
        const cells = p.content.widgets.slice(0, i + 1).filter(c => c.model.type === 'code');
        return p.sessionContext.session.kernel.status === 'idle'
            && cells.every(c => c.model.executionCount !== null);
    }}""", arg=[name, index], timeout=CELL_TIMEOUT_S * 1000, polling=1000)
    errors = page.evaluate(f"""([name, i]) => ({PANEL})(name).content.widgets.slice(0, i + 1)
        .flatMap(c => c.model.type === 'code' ? c.model.outputs.toJSON() : [])
        .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)""", [name, index])
    assert not errors, errors


def close_notebook(page, name: str) -> None:
    """Shut the notebook's kernel down (it holds the datasets) and close the page."""
    page.evaluate(f"async (name) => {{ await ({PANEL})(name).sessionContext.shutdown(); }}", name)
    page.close()


def shoot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def test_nb06_explorer_renders_and_follows_its_slider(browser, lab):
    t0 = time.monotonic()
    page = open_notebook(browser, lab, "06_figures.ipynb")
    run_through(page, "06_figures.ipynb", "FG.explorer(bundles)")
    explorer = page.locator(".jp-Cell").filter(has_text="FG.explorer(bundles)").locator(".widget-vbox").first
    explorer.wait_for(timeout=UPDATE_TIMEOUT_S * 1000)
    image = explorer.locator(".widget-output img").first
    image.wait_for(timeout=UPDATE_TIMEOUT_S * 1000)
    before = image.get_attribute("src")
    slider = explorer.locator(".widget-slider").filter(has_text="query")
    readout = slider.locator(".widget-readout")
    assert readout.inner_text().strip() == "0"
    explorer.scroll_into_view_if_needed()
    shoot(page, "nb06_explorer_before")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("7")
    page.keyboard.press("Enter")
    page.wait_for_function("([el, old]) => { const img = el.querySelector('.widget-output img');"
                           " return img && img.getAttribute('src') !== old; }",
                           arg=[explorer.element_handle(), before], timeout=UPDATE_TIMEOUT_S * 1000)
    assert readout.inner_text().strip() == "7"
    shoot(page, "nb06_explorer_query7")
    print(f"notebook 06 in JupyterLab: {time.monotonic() - t0:.0f} s")
    close_notebook(page, "06_figures.ipynb")


def test_nb09_mouse_stroke_updates_the_results_panel(browser, lab):
    t0 = time.monotonic()
    page = open_notebook(browser, lab, "09_draw_a_query.ipynb")
    run_through(page, "09_draw_a_query.ipynb", "if ready:\n    display(pad.widget())")
    canvas = page.locator(".sbir-sketchpad-canvas").first
    canvas.wait_for(timeout=UPDATE_TIMEOUT_S * 1000)
    status = page.locator(".sbir-sketchpad-status").first
    before = status.inner_text()
    assert "empty" in before
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + 0.15 * w, y0 + 0.6 * h)
    page.mouse.down()
    for t in range(1, 21):  # a sole-like curve, drawn in 20 moves
        page.mouse.move(x0 + (0.15 + 0.7 * t / 20) * w, y0 + (0.6 + 0.1 * (t / 20) ** 2) * h)
    page.mouse.up()
    page.wait_for_function("(el) => el.innerText.includes('DSSA on')", arg=status.element_handle(),
                           timeout=UPDATE_TIMEOUT_S * 1000)
    after = status.inner_text()
    assert after != before and "ms for" in after
    results = page.locator(".sbir-sketchpad-results").first
    assert (results.get_attribute("src") or "").startswith("blob:") or results.evaluate(
        "el => el.naturalWidth > 0")
    results.scroll_into_view_if_needed()
    shoot(page, "nb09_sketchpad_stroke")
    print(f"notebook 09 in JupyterLab: {time.monotonic() - t0:.0f} s; status: {after}")
    close_notebook(page, "09_draw_a_query.ipynb")
