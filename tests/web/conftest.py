"""The browser fixtures (tests/support/web.py), for the dashboard's tests only: they import
OpenCV and the synthetic line, which other tests need not load."""

from support.web import browser, dashboard, loop_dashboard, mlflow_store_template, page

__all__ = ["browser", "dashboard", "loop_dashboard", "mlflow_store_template", "page"]
