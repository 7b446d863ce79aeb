"""The status page: its WSGI application (``app``), its HTML (``page``), thumbnails
(``thumbs``), the quarantine as a list (``listing``), reasons in plain words (``words``) and the
static files (``static/``)."""
