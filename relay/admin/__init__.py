"""The operator's web page, ``relay admin``: live state, "where is my event?", dead letters with
replay, refused requests. Server-rendered (Jinja2, autoescaped), no JavaScript; docs/admin.md."""
