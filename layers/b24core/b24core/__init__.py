"""Shared library of the Bitrix24 serverless bundle (deployed as the CoreLayer).

Split by subject: ``protocol`` (forms, OAuth, REST, platform errors), ``portals`` (installation
registry and its state machine), ``events`` (intake and dispatch), ``registry`` (where app
handlers plug in). Handler modules in functions/ import this package and nothing else of ours.
"""

__version__ = "0.1.0"
