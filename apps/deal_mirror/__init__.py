"""The example app: a mirror of each portal's CRM deals, with a History tab in the deal card."""
