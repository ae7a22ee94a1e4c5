"""The staff workspace in the browser: Starlette + Jinja2 served by uvicorn.

Imported by nothing but the CLI (`intake web`, `intake run` with `[web] enabled = true`).
"""
