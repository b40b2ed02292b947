"""The Qt GUI: views, item models, dialogs and the background-work lanes (operations)."""
