"""A class on the course's JupyterHub, end to end, in Chromium (README: "A class on JupyterHub").

Real JupyterHub with its npm proxy on 127.0.0.1, real unix users (PAM login), nbgrader's
exchange, and the course's plugin grading boxed, all laid out by scripts/hub/class_hub.py as
`make hub` lays them out. The instructor releases assignment 03; two students log in, fetch it
from the Assignments tab, fill the answer cells in the notebook editor (alice every part
right in the English notebook, bob's cosine score wrong in the Chinese one, zh_CN/, beside an
English one he leaves as fetched), validate and submit; the instructor collects,
autogrades, generates and releases feedback; each student fetches the feedback and must see
the score the gradebook holds: 12/12 for alice, 11/12 for bob (the notebook's points: bob loses
exactly test_cosine_score's 1 point: no other part uses cosine_score).
Then: no student reads another's work or the instructor's solutions.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from browser_fixtures import Site, open_context

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "hub"))
import class_hub  # noqa: E402

pytestmark = [pytest.mark.grading, pytest.mark.nbgrader]

A = class_hub.ASSIGNMENT
INSTRUCTOR, ALICE, BOB = "hubtest-instructor", "hubtest-alice", "hubtest-bob"
# Bob divides by the query's length only: cosine_score(q, K) gives [10, 0, 0.6],
# not [1, 0, 0.6]: one query, so its norm (shape (1,)) broadcasts over the keys.
WRONG = {"cosine_score": "    return dot_score(query, keys) / np.linalg.norm(query, axis=-1)\n"}


def answers(wrong: dict[str, str]) -> dict[int, str]:
    """Answer cell index -> the text a student types: the solution notebook's code without
    nbgrader's markers, or, for a part named in ``wrong``, its signature and the wrong body."""
    nb = json.loads((ROOT / "solutions" / A / f"{A}.ipynb").read_text())
    typed = {}
    for i, cell in enumerate(nb["cells"]):
        meta = cell["metadata"].get("nbgrader", {})
        if not meta.get("solution") or cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if meta["grade_id"] in wrong:
            source = source.split("### BEGIN SOLUTION")[0].rstrip(" ") + wrong[meta["grade_id"]]
        typed[i] = "\n".join(ln for ln in source.splitlines() if "### " not in ln) + "\n"
    return typed


@pytest.fixture(scope="module")
def hub():
    state = Path(tempfile.mkdtemp(prefix="attn-hub-test-"))
    cls = class_hub.create_class(
        state,
        INSTRUCTOR,
        [ALICE, BOB],
        course_id="attention-test",
        env=class_hub.kept_env(),
    )
    proc = class_hub.start_hub(cls, state / "jupyterhub.log")
    try:
        yield cls
    finally:
        class_hub.stop_hub(proc)
        # Stopping the hub stopped every user's server: no process of the class is left
        # running (an exited one whose parent has not reaped it yet, a zombie, is not). A
        # kernel notices its server is gone by polling its parent (ipykernel: every second),
        # so the class gets 10 s to wind down.
        for _ in range(20):
            listed = subprocess.run(
                ["ps", "-o", "pid=,stat=,args=", "-u", f"{INSTRUCTOR},{ALICE},{BOB}"],
                stdout=subprocess.PIPE,
                text=True,
            )
            lines = listed.stdout.splitlines()
            running = [ln for ln in lines if not ln.split()[1].startswith("Z")]
            if not running:
                break
            time.sleep(0.5)
        class_hub.remove_users(cls)
        shutil.rmtree(state, ignore_errors=True)
        assert proc.returncode is not None and not running, running


def instructor(hub, *args: str) -> str:
    done = hub.run_as(INSTRUCTOR, ["nbgrader", *args], cwd=hub.course_dir)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def log_in(browser, hub, name: str):
    """A student's (or instructor's) own browser, logged in on the hub's login page."""
    context, _ = open_context(browser, Site(hub.state, hub.url))
    context.set_default_timeout(60_000)  # a server under the load of a whole test run
    page = context.new_page()
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", hub.password(name))
    page.click("#login_submit")
    page.wait_for_url(re.compile(rf"/user/{name}/tree"), timeout=120_000)
    return page


def assignments_tab(page):
    """Nbgrader -> Assignment List: the Assignments tab beside Files and Running."""
    tab = page.locator(".lm-TabBar-tab", has_text="Assignments")
    if not tab.count():
        page.click("div.lm-MenuBar-itemLabel:text('Nbgrader')")
        menu = page.locator("#jp-mainmenu-nbgrader")
        menu.locator('li[data-command="nbgrader:open-assignment-list"]').wait_for()
        assert "Formgrader" not in menu.inner_text()  # the instructor's tools are switched off
        menu.locator('li[data-command="nbgrader:open-assignment-list"]').click()
    tab.click()
    page.locator("#refresh_assignments_list").click()


def rows(page, kind: str):
    return page.locator(f"#{kind}_assignments_list > .list_item")


def fetch_and_submit(browser, hub, name: str, wrong: dict[str, str], notebook: str) -> str:
    """What the student does in the browser, in ``notebook`` of the fetched folder (the English
    one at its top, or the Chinese one in zh_CN/); returns the validation dialog's text."""
    tree = log_in(browser, hub, name)
    context = tree.context
    assignments_tab(tree)
    released = rows(tree, "released").filter(has_text=A)
    released.locator(".item_status button").click()  # Fetch
    rows(tree, "fetched").filter(has_text=A).wait_for()

    nb = context.new_page()
    nb.goto(f"{hub.url}/user/{name}/notebooks/{A}/{notebook}")
    cells = nb.locator(".jp-Notebook .jp-Cell")
    cells.first.wait_for()
    for index, text in answers(wrong).items():
        cell = cells.nth(index)
        cell.scroll_into_view_if_needed()
        editor = cell.locator(".cm-content")
        editor.click()
        nb.keyboard.press("ControlOrMeta+a")
        nb.keyboard.insert_text(text)  # as pasted: the editor adds no indentation of its own
    # Validate saves the notebook first, then runs nbgrader validate in the student's server.
    nb.get_by_role("button", name="Validate").first.click()
    dialog = nb.locator(".jp-Dialog")
    dialog.wait_for(timeout=120_000)
    verdict = dialog.inner_text()
    dialog.locator("button.jp-Dialog-button").last.click()
    nb.close()

    assignments_tab(tree)
    rows(tree, "fetched").filter(has_text=A).locator('.item_status button:text("Submit")').click()
    rows(tree, "submitted").filter(has_text=A).wait_for()
    context.close()
    return verdict


HEADING = {  # the feedback's heading, as the checks' catalog writes it
    "en": rf"{A}: score ([\d.]+) of ([\d.]+)",
    "zh_CN": rf"{A}：得分 ([\d.]+)，满分 ([\d.]+)",
}


def feedback_score(browser, hub, name: str, language: str) -> str:
    """The score on the feedback the student fetched and opened from the Assignments tab, whose
    heading is in ``language`` (the language of the notebook that was graded)."""
    tree = log_in(browser, hub, name)
    context = tree.context
    assignments_tab(tree)
    submitted = rows(tree, "submitted").filter(has_text=A)
    submitted.locator('button:text("Fetch Feedback")').click()
    submitted.locator('a:text("view feedback")').first.click(timeout=60_000)  # to its folder
    with context.expect_page() as opened:
        tree.locator(".jp-DirListing-item", has_text=f"{A}.html").dblclick()
    feedback = opened.value
    # Notebook 7's HTML viewer shows the file in an iframe (sandboxed: no scripts, none needed)
    heading = feedback.frame_locator("iframe").get_by_text(re.compile(HEADING[language]))
    text = heading.first.inner_text(timeout=60_000)
    # And through the hub, another student's server is closed to this one.
    other = ALICE if name == BOB else BOB
    answer = tree.request.get(f"{hub.url}/user/{other}/api/contents/{A}", max_redirects=5)
    assert answer.status == 403, (name, other, answer.status, answer.url)
    # and the student's own server has no formgrader (switched off for students).
    assert tree.request.get(f"{hub.url}/user/{name}/formgrader").status == 404
    context.close()
    score = re.search(HEADING[language], text)
    assert score, text[:2000]
    return f"{float(score[1]):g}/{float(score[2]):g}"


# Run as one user: can they read the file (or list the folder) sys.argv[1]?
PROBE = """
import os, sys
path = sys.argv[1]
try:
    os.listdir(path) if os.path.isdir(path) else open(path).read()
    print("read")
except PermissionError:
    print("denied")
"""


def test_a_class_on_the_hub_in_the_browser(hub, browser):
    # The instructor generates and releases assignment 03 into the exchange.
    instructor(hub, "generate_assignment", A, "--force")
    instructor(hub, "release_assignment", A, "--force")

    right = fetch_and_submit(browser, hub, ALICE, wrong={}, notebook=f"{A}.ipynb")
    # bob works in the Chinese notebook and submits the folder as fetched
    wrong = fetch_and_submit(browser, hub, BOB, wrong=WRONG, notebook=f"zh_CN/{A}.ipynb")
    assert "passes" in right.lower() or "success" in right.lower(), right
    assert "cosine_score" in wrong, wrong

    # The instructor collects, grades with the course's plugin (boxed), feeds back.
    collected = instructor(hub, "collect", A)
    assert ALICE in collected and BOB in collected, collected
    graded = instructor(hub, "autograde", A)
    # The plugin's preflight refuses to grade unboxed (README): it ran, and it passed.
    assert "Running pre-convert hook" in graded and "hook failed" not in graded, graded
    instructor(hub, "generate_feedback", A)
    instructor(hub, "release_feedback", A)

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{hub.course_dir / 'gradebook.db'}") as gb:
        subs = {s: gb.find_submission(A, s) for s in (ALICE, BOB)}
        held = {s: f"{sub.score:g}/{sub.max_score:g}" for s, sub in subs.items()}
        lost = {
            s: sorted(
                g.name for g in gb.find_submission_notebook(A, A, s).grades if g.score < g.max_score
            )
            for s in (ALICE, BOB)
        }
    assert lost == {ALICE: [], BOB: ["test_cosine_score"]}, lost
    assert held == {ALICE: "12/12", BOB: "11/12"}, held  # the notebook's points, by hand
    assert f"graded zh_CN/{A}.ipynb" in graded, graded  # bob's Chinese notebook, as the log says
    seen = {s: feedback_score(browser, hub, s, lang) for s, lang in ((ALICE, "en"), (BOB, "zh_CN"))}
    assert seen == held

    # Nobody reads another's work: the file system says no, as each user's server would.
    alice_copy = hub.home(ALICE) / A / f"{A}.ipynb"
    solutions = hub.course_dir / "solutions" / A / f"{A}.ipynb"
    submitted = hub.course_dir / "submitted" / ALICE / A / f"{A}.ipynb"
    inbound = hub.state / "exchange" / "attention-test" / "inbound"
    for path in (alice_copy, solutions, submitted, inbound):
        assert path.exists(), path  # the paths are right, so a refusal means something
    for path in (alice_copy, solutions, submitted, inbound):
        seen_by_bob = hub.run_as(BOB, ["python", "-c", PROBE, str(path)]).stdout.strip()
        assert seen_by_bob == "denied", (path, seen_by_bob)
    # ... while each reads their own (the probe can say "read").

    assert hub.run_as(ALICE, ["python", "-c", PROBE, str(alice_copy)]).stdout.strip() == "read"
