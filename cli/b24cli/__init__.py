"""The operator's command line, ``b24app``."""
