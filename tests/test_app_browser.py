"""The lecture app served by Voila, in headless Chromium: it loads, sliders redraw plots, no page error, no CDN."""

import pytest
from app_harness import chromium_page, move_and_wait, open_app, signature, slider_handles, voila_app

pytestmark = pytest.mark.timeout(400)
# Voila's page template links Font Awesome from a CDN; it only styles icons and fails harmlessly offline
HARMLESS = ("@fortawesome/fontawesome-free",)


def test_app_loads_and_sliders_redraw_the_plots():
    with voila_app() as url, chromium_page() as (page, errors, outside):
        open_app(page, url, plots=3)
        handles = slider_handles(
            page
        )  # t (schedules), steps (trajectories), dial, rescaling, steps (samplers)
        assert handles.count() == 5
        t_marker = signature(page, 0, 5)
        move_and_wait(page, handles.nth(0), plot=0, trace=5)  # the dot on alpha(t) moves to the new t
        assert signature(page, 0, 5) != t_marker
        assert page.locator(".widget-readout").first.inner_text().strip() == "0.51"
        move_and_wait(page, handles.nth(1), plot=1, trace=7)  # new samples for another step count
        move_and_wait(page, handles.nth(2), plot=2, trace=3)  # the DDIM -> DDPM dial
        assert page.locator(".course-message:visible").count() == 0
        assert errors == []
        assert [u for u in outside if not any(h in u for h in HARMLESS)] == []
