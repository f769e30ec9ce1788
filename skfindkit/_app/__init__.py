"""What the application layer (the ``skfindkit`` command, the service, the demo) shares.

:mod:`.pipeline_files` reads and writes pipeline files (the safe format, or a
pickle on request and only when trusted); :mod:`.kinds` says what a pipeline
searches (images, sounds, texts or vectors) and which files are of a kind;
:mod:`.items` adds items to a fitted pipeline. The command line modules
(``skfindkit/_cli*.py``) and the service (``skfindkit/serve/``) import these,
never each other.
"""
