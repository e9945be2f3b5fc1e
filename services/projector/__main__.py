"""``python -m services.projector`` runs the projector (``app.py``)."""

from services.projector.app import main

main()
