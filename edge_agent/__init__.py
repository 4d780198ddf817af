"""EdgePlane edge agent: scores POS transactions on the device; never imports the server."""
