"""The lecture app served by Voila, in headless Chromium: it loads, sliders redraw plots, no page error, no request
leaves the machine, no command line on screen, and every explorer fits a projector's screen."""

import os
from pathlib import Path

import pytest
from app_harness import (
    EXPLORER_BOXES,
    chromium_page,
    move_and_wait,
    open_app,
    signature,
    slider_handles,
    voila_app,
)

pytestmark = pytest.mark.timeout(400)
PROJECTORS = [(1280, 720), (1920, 1080)]
EXPLORERS = 5  # schedules, trajectories, samplers, few steps, guidance
# COURSE_SCREENSHOTS=folder keeps a screenshot of each explorer at each size there
SHOTS = os.environ.get("COURSE_SCREENSHOTS")


@pytest.fixture(scope="module")
def app_url():
    with voila_app() as url:
        yield url


def test_app_loads_and_sliders_redraw_the_plots(app_url):
    with chromium_page() as (page, errors, outside):
        open_app(page, app_url, plots=4)
        # t (schedules), steps (trajectories), dial, rescaling, steps (samplers), NFE (few steps), guidance scale
        handles = slider_handles(page)
        assert handles.count() == 7
        t_marker = signature(page, 0, 5)
        move_and_wait(page, handles.nth(0), plot=0, trace=5)  # the dot on alpha(t) moves to the new t
        assert signature(page, 0, 5) != t_marker
        assert page.locator(".widget-readout").first.inner_text().strip() == "0.51"
        move_and_wait(page, handles.nth(1), plot=1, trace=7)  # new samples for another step count
        move_and_wait(page, handles.nth(2), plot=2, trace=3)  # the DDIM -> DDPM dial
        move_and_wait(page, handles.nth(5), plot=3, trace=5)  # both few-step samplers at one more call
        assert page.locator(".course-message:visible").count() == 0
        text = page.locator("body").inner_text()
        for command in ("voila ", ".venv/bin", "--port", "--Voila"):  # no command line shown to the audience
            assert command not in text, command
        assert page.locator(".course-explorer img").count() == 1  # the guidance explorer's digits
        assert errors == []
        assert outside == []  # nothing requested from outside this machine (Font Awesome included)


@pytest.mark.parametrize(("width", "height"), PROJECTORS, ids=[f"{w}x{h}" for w, h in PROJECTORS])
def test_every_explorer_fits_the_screen_with_readouts_above_its_plot(app_url, width, height):
    with chromium_page(width, height) as (page, errors, outside):
        open_app(page, app_url, plots=4)
        page.wait_for_timeout(1000)  # plotly's resize to the frame
        explorers = page.locator(".course-explorer")
        assert explorers.count() == EXPLORERS
        for i in range(EXPLORERS):
            explorers.nth(i).evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(300)
            boxes = explorers.nth(i).evaluate(EXPLORER_BOXES)
            where = f"explorer {i} at {width}x{height}"
            assert boxes["controls"] and boxes["readouts"] and boxes["plot"], (where, boxes)
            for kind in ("title", "controls", "readouts", "plot"):
                for top, bottom in boxes[kind]:
                    assert -1 <= top and bottom <= height + 1, (where, kind, top, bottom)
            plot_top = min(top for top, _ in boxes["plot"])
            assert max(bottom for _, bottom in boxes["readouts"]) <= plot_top + 1, (where, boxes)
            if SHOTS:
                Path(SHOTS).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(SHOTS) / f"app_{width}x{height}_explorer{i}.png"))
        assert errors == [] and outside == []
