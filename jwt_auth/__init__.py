"""The ``jwt-auth`` command line and the local stack it runs."""
